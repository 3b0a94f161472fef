//! Routing: from a directory of handler files to a table that maps a request to a handler.
//!
//! A routes directory is laid out like the URL space it serves:
//!
//! ```text
//! routes/
//!   GET.wasm                  GET /
//!   hello/GET.wasm            GET /hello
//!   users/{id}/GET.wasm       GET /users/42          (param id = "42")
//!   users/{id}/PUT.wasm       PUT /users/42
//!   files/ANY.wasm            any method on /files   (a method file wins over ANY)
//! ```
//!
//! `site::scan` walks such a directory and returns every [`RouteFile`]; [`RouteTable`] is the
//! immutable, generic table built from those files and their loaded handlers, answering
//! [`RouteTable::lookup`] on the request path. The rules (literal beats `{var}` with
//! backtracking, HEAD falls back to GET, ANY serves what no method file does, 405 with a
//! precomputed `Allow`) are documented on [`RouteTable::lookup`].
//!
//! This module is pure data: no I/O, and it must not depend on wasmtime, on the HTTP codec or
//! on anything async. The handler type is a parameter, so tests use plain values.

mod table;

use std::fmt;
use std::path::PathBuf;

pub use table::{Lookup, Match, RouteTable};

/// The methods a handler file can be named after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodKey {
    /// `GET.wasm`; also serves HEAD when there is no `HEAD.wasm`.
    Get,
    /// `HEAD.wasm`.
    Head,
    /// `POST.wasm`.
    Post,
    /// `PUT.wasm`.
    Put,
    /// `PATCH.wasm`.
    Patch,
    /// `DELETE.wasm`.
    Delete,
    /// `OPTIONS.wasm`.
    Options,
    /// `ANY.wasm`: serves every method that has no file of its own on the route.
    Any,
}

impl MethodKey {
    /// Every key, in the order used for sorting and for the `Allow` header.
    pub const ALL: [MethodKey; 8] = [
        MethodKey::Get,
        MethodKey::Head,
        MethodKey::Post,
        MethodKey::Put,
        MethodKey::Patch,
        MethodKey::Delete,
        MethodKey::Options,
        MethodKey::Any,
    ];

    /// The key a handler file name stands for: `"GET.wasm"` -> `Some(Get)`. Case-sensitive.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let method = name.strip_suffix(".wasm")?;
        Self::ALL.into_iter().find(|key| key.as_str() == method)
    }

    /// The key that serves a request method by name: `"GET"` -> `Some(Get)`.
    ///
    /// Case-sensitive, as HTTP methods are. `"ANY"` and methods without a file name of their
    /// own (`PROPFIND`, `get`) give `None`: only an `ANY.wasm` can serve those.
    pub fn from_request_method(method: &str) -> Option<Self> {
        match method {
            "GET" => Some(MethodKey::Get),
            "HEAD" => Some(MethodKey::Head),
            "POST" => Some(MethodKey::Post),
            "PUT" => Some(MethodKey::Put),
            "PATCH" => Some(MethodKey::Patch),
            "DELETE" => Some(MethodKey::Delete),
            "OPTIONS" => Some(MethodKey::Options),
            _ => None,
        }
    }

    /// The method name: `"GET"`, …, `"ANY"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKey::Get => "GET",
            MethodKey::Head => "HEAD",
            MethodKey::Post => "POST",
            MethodKey::Put => "PUT",
            MethodKey::Patch => "PATCH",
            MethodKey::Delete => "DELETE",
            MethodKey::Options => "OPTIONS",
            MethodKey::Any => "ANY",
        }
    }

    /// The handler file name: `"GET.wasm"`.
    pub fn file_name(self) -> &'static str {
        match self {
            MethodKey::Get => "GET.wasm",
            MethodKey::Head => "HEAD.wasm",
            MethodKey::Post => "POST.wasm",
            MethodKey::Put => "PUT.wasm",
            MethodKey::Patch => "PATCH.wasm",
            MethodKey::Delete => "DELETE.wasm",
            MethodKey::Options => "OPTIONS.wasm",
            MethodKey::Any => "ANY.wasm",
        }
    }

    /// Position in [`MethodKey::ALL`], used to index per-route handler slots.
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MethodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One handler file found by the routes directory scan (`site::scan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteFile {
    /// The route pattern, e.g. `"/users/{id}"`; `"/"` for the root folder.
    pub route: String,
    /// The method the file is named after.
    pub method: MethodKey,
    /// The `.wasm` file, as reached from the scanned directory.
    pub path: PathBuf,
    /// For an `ANY.wasm` file: the methods its handler says it implements (others get 405);
    /// empty means every method. Filled in once the handler is loaded; ignored for method files.
    pub declares: Vec<MethodKey>,
}

/// Every problem found while scanning a routes directory or building a [`RouteTable`].
///
/// Displays one problem per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", display_lines(.problems))]
pub struct ScanError {
    problems: Vec<Problem>,
}

impl ScanError {
    /// Wraps the problems found; `None` when there are none.
    pub(crate) fn from_problems(problems: Vec<Problem>) -> Option<Self> {
        (!problems.is_empty()).then_some(ScanError { problems })
    }

    /// The problems, in the order they were found (at least one).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Takes the problems out.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

fn display_lines(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// The handler file names a routes directory accepts, for error messages.
const ACCEPTED_FILE_NAMES: &str =
    "GET.wasm, HEAD.wasm, POST.wasm, PUT.wasm, PATCH.wasm, DELETE.wasm, OPTIONS.wasm, ANY.wasm";

/// One thing wrong with a routes directory or with the entries given to [`RouteTable::new`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The routes directory itself is missing or cannot be read.
    #[error("cannot read routes directory `{}`: {source}", path.display())]
    RoutesDirUnreadable {
        /// The scanned directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The routes directory is not a directory.
    #[error("routes directory `{}` is not a directory", path.display())]
    RoutesDirNotADirectory {
        /// The scanned path.
        path: PathBuf,
    },
    /// A folder or file inside the tree cannot be read (or is a broken symlink).
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        /// The entry.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A folder whose name has braces but is not `{name}` with a valid name.
    #[error(
        "folder `{}`: `{name}` is not a valid parameter folder (expected `{{name}}` with name \
         matching [A-Za-z_][A-Za-z0-9_-]*)",
        path.display()
    )]
    InvalidParamFolder {
        /// The folder.
        path: PathBuf,
        /// Its name.
        name: String,
    },
    /// A `*.wasm` file that is not one of the handler file names.
    #[error(
        "`{}`: `{name}` is not a handler file name (expected one of {ACCEPTED_FILE_NAMES})",
        path.display()
    )]
    UnknownHandlerFile {
        /// The file.
        path: PathBuf,
        /// Its name.
        name: String,
    },
    /// A handler file name used by something that is not a regular file (a folder, a socket…).
    #[error("`{}`: `{name}` is a handler file name but not a regular file", path.display())]
    HandlerNotAFile {
        /// The entry.
        path: PathBuf,
        /// Its name.
        name: String,
    },
    /// A folder (or `.wasm` file) whose name is not UTF-8 and so can never be routed to.
    #[error("`{}`: the name is not valid UTF-8", path.display())]
    NonUtf8Name {
        /// The entry.
        path: PathBuf,
    },
    /// Two `{var}` folders at one level: a segment could match either.
    #[error(
        "`{}` and `{}` are both parameter folders at one level (`{first_name}` and \
         `{second_name}`); keep one",
        first.display(),
        second.display()
    )]
    ConflictingParams {
        /// The first folder (or, from [`RouteTable::new`], the first file under it).
        first: PathBuf,
        /// Its parameter segment, e.g. `{id}`.
        first_name: String,
        /// The second one.
        second: PathBuf,
        /// Its parameter segment, e.g. `{name}`.
        second_name: String,
    },
    /// A parameter name used twice along one route, e.g. `/a/{id}/b/{id}`.
    #[error("`{}`: parameter `{name}` appears twice in route `{route}`", path.display())]
    DuplicateParamName {
        /// The second folder using the name (or the file, from [`RouteTable::new`]).
        path: PathBuf,
        /// The route pattern.
        route: String,
        /// The parameter name.
        name: String,
    },
    /// Two handlers for the same route and method (only from [`RouteTable::new`]).
    #[error(
        "`{}` and `{}` both handle {method} `{route}`",
        first.display(),
        second.display()
    )]
    DuplicateHandler {
        /// The route pattern.
        route: String,
        /// The method.
        method: MethodKey,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// A route pattern that is not `/` or `/segment/...` with valid segments
    /// (only from [`RouteTable::new`]: the scan builds valid ones).
    #[error("`{}`: invalid route pattern `{route}`: {reason}", path.display())]
    InvalidRoute {
        /// The file the route was given for.
        path: PathBuf,
        /// The pattern.
        route: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A symlinked folder that leads back to one of its own ancestors.
    #[error("`{}` is a symlink cycle (it leads back to `{}`)", path.display(), target.display())]
    SymlinkCycle {
        /// The folder as reached in the tree.
        path: PathBuf,
        /// The ancestor it resolves to.
        target: PathBuf,
    },
    /// A file under `errors/` that is not an error page (`errors/{code}/GET.wasm` or
    /// `ANY.wasm`, with a status code from 400 to 599 or a `{param}` for every status).
    #[error("`{}` is not an error page: {reason}", path.display())]
    BadErrorPage {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A folder nested deeper than the scan's depth limit.
    #[error("`{}` is nested more than {max} folders deep", path.display())]
    TooDeep {
        /// The first folder past the limit.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
}

/// What one route segment (a folder name) stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    /// Matches a decoded request segment equal to this.
    Literal(&'a str),
    /// `{name}`: captures any one segment.
    Param(&'a str),
}

/// Parses a folder name or route segment; `None` when it has braces but is not `{name}`.
pub(crate) fn parse_segment(segment: &str) -> Option<Segment<'_>> {
    if !segment.contains(['{', '}']) {
        return Some(Segment::Literal(segment));
    }
    let name = segment.strip_prefix('{')?.strip_suffix('}')?;
    is_param_name(name).then_some(Segment::Param(name))
}

/// `[A-Za-z_][A-Za-z0-9_-]*`.
fn is_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_key_round_trips_through_file_name() {
        for key in MethodKey::ALL {
            assert_eq!(MethodKey::from_file_name(key.file_name()), Some(key));
            assert_eq!(key.file_name(), format!("{}.wasm", key.as_str()));
            assert_eq!(key.to_string(), key.as_str());
        }
    }

    #[test]
    fn handler_file_names_are_case_sensitive() {
        assert_eq!(MethodKey::from_file_name("get.wasm"), None);
        assert_eq!(MethodKey::from_file_name("GET.WASM"), None);
        assert_eq!(MethodKey::from_file_name("FOO.wasm"), None);
        assert_eq!(MethodKey::from_file_name("GET"), None);
    }

    #[test]
    fn request_method_any_has_no_key() {
        assert_eq!(MethodKey::from_request_method("GET"), Some(MethodKey::Get));
        assert_eq!(MethodKey::from_request_method("get"), None);
        assert_eq!(MethodKey::from_request_method("ANY"), None);
        assert_eq!(MethodKey::from_request_method("PROPFIND"), None);
    }

    #[test]
    fn method_keys_sort_in_allow_order() {
        let mut keys = MethodKey::ALL;
        keys.reverse();
        keys.sort();
        assert_eq!(keys, MethodKey::ALL);
    }

    #[test]
    fn param_folder_names_follow_the_grammar() {
        assert_eq!(parse_segment("users"), Some(Segment::Literal("users")));
        assert_eq!(parse_segment("{id}"), Some(Segment::Param("id")));
        assert_eq!(parse_segment("{_a-1}"), Some(Segment::Param("_a-1")));
        for bad in ["{a}b", "a{b}", "{}", "{1x}", "{a", "a}", "{a b}", "{{a}}", "{-a}"] {
            assert_eq!(parse_segment(bad), None, "{bad}");
        }
    }

    #[test]
    fn scan_error_displays_one_problem_per_line() {
        let err = ScanError::from_problems(vec![
            Problem::RoutesDirNotADirectory { path: "a".into() },
            Problem::NonUtf8Name { path: "b".into() },
        ])
        .expect("two problems");
        assert_eq!(
            err.to_string(),
            "routes directory `a` is not a directory\n`b`: the name is not valid UTF-8"
        );
        assert!(ScanError::from_problems(Vec::new()).is_none());
    }
}
