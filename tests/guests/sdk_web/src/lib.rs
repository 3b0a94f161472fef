//! Cookies and redirects, served at `web/ANY.wasm`:
//!
//! - `GET /web?set=VALUE`: sets the cookie `session=VALUE` (HttpOnly, Secure, SameSite=Lax,
//!   Max-Age=3600, Path=/) plus `theme=dark`; `?path=P` uses P as the session cookie's path
//!   (a control character there makes the SDK answer 500).
//! - `GET /web?logout`: removes the session cookie.
//! - `GET /web`: `{"session": .., "theme": .., "count": N}` from the request's cookies.
//! - `GET /web?to=URL[&status=301|302|303|307|308]`: redirects to URL (303 by default).

use std::time::Duration;

use wasm_host_sdk::prelude::*;
use wasm_host_sdk::serde_json::json;

fn redirect(to: &str, status: Option<&str>) -> Result<Response, HttpError> {
    Ok(match status {
        None | Some("303") => Response::redirect(to),
        Some("301") => Response::moved_permanently(to),
        Some("302") => Response::found(to),
        Some("307") => Response::temporary_redirect(to),
        Some("308") => Response::permanent_redirect(to),
        Some(other) => return Err(HttpError::bad_request(format!("no redirect with status {other}"))),
    })
}

fn handle(req: Request) -> Result<Response, HttpError> {
    if let Some(to) = req.query("to") {
        return redirect(&to, req.query("status").as_deref());
    }
    if let Some(value) = req.query("set") {
        let path = req.query("path").unwrap_or_else(|| "/".to_owned());
        let session = Cookie::new("session", value)
            .http_only()
            .secure()
            .same_site(SameSite::Lax)
            .max_age(Duration::from_secs(3600))
            .path(path);
        return Ok(Response::text("set\n").with_cookie(session).with_cookie(Cookie::new("theme", "dark")));
    }
    if req.query("logout").is_some() {
        return Ok(Response::redirect("/").with_cookie(Cookie::removal("session").path("/")));
    }
    Ok(Json(json!({
        "session": req.cookie("session"),
        "theme": req.cookie("theme"),
        "count": req.cookies().count(),
    }))
    .into_response())
}

export!(handle);
