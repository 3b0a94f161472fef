//! `wasm-host routes`: the route table as text, every handler file a row, broken ones marked
//! with the reason beside them, and the tree's own problems after the table.

use std::fmt::Write as _;

use super::Build;

/// Renders the route table of `build`: `ROUTE METHOD WORLD FILE` columns (an `ANY` file whose
/// handler declares its methods shows them: `ANY:GET,POST`); a handler that
/// cannot be served has `-` as its world and `BROKEN: <reason>` after its file. Problems of the
/// tree itself (misnamed files, unroutable folders) follow, one per line.
pub fn render(build: &Build) -> String {
    let pages = build
        .errors
        .entries()
        .map(|(file, loaded)| (format!("/errors{}", file.route), "  (error page)", file, loaded));
    let rows: Vec<[String; 4]> = build
        .routes
        .entries()
        .map(|(file, loaded)| (file.route.clone(), "", file, loaded))
        .chain(pages)
        .map(|(route, kind, file, loaded)| {
            let (world, note) = match &loaded.handler {
                Ok(handler) => (handler.world().name().to_owned(), String::new()),
                Err(reason) => ("-".to_owned(), format!("  BROKEN: {reason}")),
            };
            let method = match file.declares.as_slice() {
                [] => file.method.as_str().to_owned(),
                declares => {
                    format!("ANY:{}", declares.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
                }
            };
            [route, method, world, format!("{}{kind}{note}", file.path.display())]
        })
        .collect();
    let header = ["ROUTE", "METHOD", "WORLD", "FILE"].map(str::to_owned);
    let widths: Vec<usize> =
        (0..3).map(|i| rows.iter().chain([&header]).map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in [&header].into_iter().chain(&rows) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    if !build.tree_problems.is_empty() {
        out.push_str("\nnot served:\n");
        for problem in &build.tree_problems {
            let _ = writeln!(out, "  {problem}");
        }
    }
    out
}
