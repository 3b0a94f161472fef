//! The directory walk: routes folder tree in, [`RouteFile`]s and every [`Problem`] out.
//!
//! Only reads the file system (names and metadata, never file contents); knows nothing of
//! wasm or HTTP.

use std::fs;
use std::path::{Path, PathBuf};

use crate::routes::{MethodKey, Problem, RouteFile, ScanError, Segment, parse_segment};

/// How many folders deep a routes tree may go. Real routes are a handful of levels; the cap
/// keeps a pathological tree (or a symlink loop the cycle check misses) from running away.
pub const MAX_DEPTH: usize = 32;

/// Walks the routes directory tree and returns every handler file, sorted by (route, method),
/// or every problem found.
///
/// Folders are route segments (`{name}` captures one segment), `GET.wasm`…`ANY.wasm` are
/// handler files, other `*.wasm` files are errors, other files and entries starting with `.`
/// are ignored. Symlinks are followed; a cycle or a tree deeper than [`MAX_DEPTH`] is a problem.
pub fn scan(dir: &Path) -> Result<Vec<RouteFile>, ScanError> {
    let scanned = walk(dir)?;
    match ScanError::from_problems(scanned.problems) {
        Some(err) => Err(err),
        None => Ok(scanned.files),
    }
}

/// What a tolerant walk found: the usable handler files and the problems beside them.
#[derive(Debug)]
pub struct Scanned {
    /// The handler files that can be routed, sorted by (route, method).
    pub files: Vec<RouteFile>,
    /// Everything wrong in the tree. A file with a bad name is left out of `files`; so is every
    /// file below a folder that cannot be routed (a bad `{param}` name, a second `{param}` folder
    /// beside another, a parameter name used twice).
    pub problems: Vec<Problem>,
}

/// Walks the tree like [`scan`] but keeps going past problems: one misnamed file never
/// hides the rest of the tree.
///
/// # Errors
///
/// Only when the routes directory itself cannot be read or is not a directory.
pub fn walk(dir: &Path) -> Result<Scanned, ScanError> {
    let mut walk = Walk::default();
    match fs::metadata(dir) {
        Err(source) => walk.problems.push(Problem::RoutesDirUnreadable { path: dir.to_path_buf(), source }),
        Ok(meta) if !meta.is_dir() => {
            walk.problems.push(Problem::RoutesDirNotADirectory { path: dir.to_path_buf() })
        }
        Ok(_) => walk.folder(dir, &mut Vec::new()),
    }
    if walk
        .problems
        .iter()
        .any(|p| matches!(p, Problem::RoutesDirUnreadable { .. } | Problem::RoutesDirNotADirectory { .. }))
    {
        return Err(ScanError::from_problems(walk.problems).expect("at least one problem"));
    }
    let mut files = walk.files;
    files.sort_by(|a, b| (&a.route, a.method).cmp(&(&b.route, b.method)));
    Ok(Scanned { files, problems: walk.problems })
}

/// State of one scan.
#[derive(Default)]
struct Walk {
    files: Vec<RouteFile>,
    problems: Vec<Problem>,
    /// Canonical paths of the folders being walked, root first, to detect symlink cycles.
    ancestors: Vec<PathBuf>,
    /// How many of the folders being walked cannot be routed: files below them are reported
    /// but not served.
    faulty: usize,
}

impl Walk {
    /// Walks one folder whose route segments (folder names below the root) are `segments`.
    fn folder(&mut self, dir: &Path, segments: &mut Vec<String>) {
        let canonical = match fs::canonicalize(dir) {
            Ok(canonical) => canonical,
            Err(source) => {
                self.unreadable(dir, source);
                return;
            }
        };
        if let Some(target) = self.ancestors.iter().find(|a| **a == canonical) {
            let target = target.clone();
            self.problems.push(Problem::SymlinkCycle { path: dir.to_path_buf(), target });
            return;
        }
        let mut entries = match fs::read_dir(dir).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
            Ok(entries) => entries,
            Err(source) => {
                self.unreadable(dir, source);
                return;
            }
        };
        entries.sort_by_key(fs::DirEntry::file_name);

        self.ancestors.push(canonical);
        // The first `{var}` folder seen here, to report a second one.
        let mut param_folder: Option<(PathBuf, String)> = None;
        for entry in entries {
            let os_name = entry.file_name();
            if os_name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = entry.path();
            // `fs::metadata` follows symlinks: a link to a folder is a folder.
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(source) => {
                    self.unreadable(&path, source);
                    continue;
                }
            };
            let name = os_name.to_str();
            if meta.is_dir() {
                match name {
                    Some(name) => self.subfolder(path, name, segments, &mut param_folder),
                    None => self.problems.push(Problem::NonUtf8Name { path }),
                }
            } else {
                match name {
                    Some(name) => self.file(path, name, meta.is_file(), segments),
                    None if is_wasm_name(&os_name.to_string_lossy()) => {
                        self.problems.push(Problem::NonUtf8Name { path });
                    }
                    None => {}
                }
            }
        }
        self.ancestors.pop();
    }

    /// Checks a folder found in a folder whose route segments are `segments`, then walks it.
    fn subfolder(
        &mut self,
        path: PathBuf,
        name: &str,
        segments: &mut Vec<String>,
        param_folder: &mut Option<(PathBuf, String)>,
    ) {
        if MethodKey::from_file_name(name).is_some() {
            self.problems.push(Problem::HandlerNotAFile { path, name: name.to_owned() });
            return;
        }
        let problems_before = self.problems.len();
        match parse_segment(name) {
            None => {
                self.problems.push(Problem::InvalidParamFolder { path: path.clone(), name: name.to_owned() });
            }
            Some(Segment::Literal(_)) => {}
            Some(Segment::Param(param)) => {
                match param_folder {
                    Some((first, first_name)) => self.problems.push(Problem::ConflictingParams {
                        first: first.clone(),
                        first_name: first_name.clone(),
                        second: path.clone(),
                        second_name: name.to_owned(),
                    }),
                    None => *param_folder = Some((path.clone(), name.to_owned())),
                }
                let used = segments.iter().any(|s| parse_segment(s) == Some(Segment::Param(param)));
                if used {
                    self.problems.push(Problem::DuplicateParamName {
                        path: path.clone(),
                        route: route_of(segments.iter().map(String::as_str).chain([name])),
                        name: param.to_owned(),
                    });
                }
            }
        }
        if segments.len() >= MAX_DEPTH {
            self.problems.push(Problem::TooDeep { path, max: MAX_DEPTH });
            return;
        }
        // Walk even a faulty folder, so one scan reports every problem below it too, but serve
        // nothing from it.
        let faulty = self.problems.len() > problems_before;
        self.faulty += usize::from(faulty);
        segments.push(name.to_owned());
        self.folder(&path, segments);
        segments.pop();
        self.faulty -= usize::from(faulty);
    }

    /// Records a handler file, ignores a non-`.wasm` file, reports any other `.wasm` file.
    fn file(&mut self, path: PathBuf, name: &str, is_file: bool, segments: &[String]) {
        let Some(method) = MethodKey::from_file_name(name) else {
            if is_wasm_name(name) {
                self.problems.push(Problem::UnknownHandlerFile { path, name: name.to_owned() });
            }
            return;
        };
        if !is_file {
            self.problems.push(Problem::HandlerNotAFile { path, name: name.to_owned() });
            return;
        }
        if self.faulty == 0 {
            let route = route_of(segments.iter().map(String::as_str));
            self.files.push(RouteFile { route, method, path, declares: Vec::new() });
        }
    }

    fn unreadable(&mut self, path: &Path, source: std::io::Error) {
        self.problems.push(Problem::Unreadable { path: path.to_path_buf(), source });
    }
}

/// `*.wasm`, with the extension in any case (`get.WASM` is a mistake worth reporting too).
fn is_wasm_name(name: &str) -> bool {
    let len = name.len();
    len >= 5 && name.as_bytes()[len - 5..].eq_ignore_ascii_case(b".wasm")
}

/// The route pattern for folder names below the root: `[]` -> `/`, `[a, {b}]` -> `/a/{b}`.
fn route_of<'s>(segments: impl Iterator<Item = &'s str>) -> String {
    let mut route = String::new();
    for segment in segments {
        route.push('/');
        route.push_str(segment);
    }
    if route.is_empty() {
        route.push('/');
    }
    route
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Lookup, RouteTable};

    /// Creates the files (and their folders) under a fresh temp dir.
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for file in files {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(&path, b"").expect("write");
        }
        dir
    }

    fn routes(dir: &Path) -> Vec<(String, MethodKey)> {
        scan(dir).expect("scan").into_iter().map(|f| (f.route, f.method)).collect()
    }

    fn problems(dir: &Path) -> Vec<String> {
        scan(dir).expect_err("scan should fail").problems().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn folders_are_segments_and_files_are_methods() {
        let dir = tree(&[
            "GET.wasm",
            "hello/GET.wasm",
            "users/{id}/GET.wasm",
            "users/{id}/PUT.wasm",
            "files/ANY.wasm",
        ]);
        let files = scan(dir.path()).expect("scan");
        let got: Vec<_> = files.iter().map(|f| (f.route.as_str(), f.method)).collect();
        assert_eq!(
            got,
            [
                ("/", MethodKey::Get),
                ("/files", MethodKey::Any),
                ("/hello", MethodKey::Get),
                ("/users/{id}", MethodKey::Get),
                ("/users/{id}", MethodKey::Put),
            ]
        );
        assert_eq!(files[3].path, dir.path().join("users/{id}/GET.wasm"));
    }

    #[test]
    fn other_files_and_dot_entries_are_ignored() {
        let dir = tree(&[
            "README.md",
            ".gitkeep",
            "hello/GET.wasm",
            "hello/notes.txt",
            ".hidden/GET.wasm",
            ".{bad}/FOO.wasm",
            "hello/.FOO.wasm",
            "empty/.gitkeep",
        ]);
        assert_eq!(routes(dir.path()), [("/hello".to_owned(), MethodKey::Get)]);
    }

    #[test]
    fn empty_routes_dir_has_no_routes() {
        let dir = tree(&[]);
        assert_eq!(routes(dir.path()), []);
    }

    #[test]
    fn unknown_wasm_file_is_an_error_listing_accepted_names() {
        let dir = tree(&["FOO.wasm", "a/get.wasm", "a/GET.WASM", "a/GET.wasm"]);
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 3, "{problems:#?}");
        let foo = dir.path().join("FOO.wasm");
        assert_eq!(
            problems[0],
            format!(
                "`{}`: `FOO.wasm` is not a handler file name (expected one of GET.wasm, \
                 HEAD.wasm, POST.wasm, PUT.wasm, PATCH.wasm, DELETE.wasm, OPTIONS.wasm, ANY.wasm)",
                foo.display()
            )
        );
        assert!(problems[1].contains("`GET.WASM`"), "{}", problems[1]);
        assert!(problems[2].contains("`get.wasm`"), "{}", problems[2]);
    }

    #[test]
    fn malformed_param_folders_are_errors() {
        let dir = tree(&["{a}b/GET.wasm", "{}/GET.wasm", "x/{1x}/GET.wasm"]);
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 3, "{problems:#?}");
        for (problem, name) in problems.iter().zip(["{1x}", "{a}b", "{}"]) {
            assert!(problem.contains(&format!("`{name}` is not a valid parameter folder")));
        }
        assert!(problems[0].contains(&dir.path().join("x/{1x}").display().to_string()));
    }

    #[test]
    fn sibling_param_folders_are_an_error_naming_both() {
        let dir = tree(&["users/{id}/GET.wasm", "users/{name}/.gitkeep"]);
        let problems = problems(dir.path());
        assert_eq!(
            problems,
            [format!(
                "`{}` and `{}` are both parameter folders at one level (`{{id}}` and `{{name}}`); \
                 keep one",
                dir.path().join("users/{id}").display(),
                dir.path().join("users/{name}").display()
            )]
        );
    }

    #[test]
    fn param_name_used_twice_in_a_route_is_an_error() {
        let dir = tree(&["a/{id}/b/{id}/GET.wasm"]);
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("parameter `id` appears twice in route `/a/{id}/b/{id}`"));
    }

    #[test]
    fn folder_named_like_a_handler_file_is_an_error() {
        let dir = tree(&["GET.wasm/x.txt"]);
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("`GET.wasm` is a handler file name but not a regular file"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tree(&[
            "FOO.wasm",
            "{a}b/GET.wasm",
            "users/{id}/GET.wasm",
            "users/{name}/GET.wasm",
            "users/{name}/deeper/bad.wasm",
            "fine/GET.wasm",
        ]);
        let err = scan(dir.path()).expect_err("scan should fail");
        assert_eq!(err.problems().len(), 4, "{err}");
        assert_eq!(err.to_string().lines().count(), 4, "{err}");
    }

    #[test]
    fn missing_routes_dir_is_an_error_naming_it() {
        let dir = tree(&[]);
        let missing = dir.path().join("nope");
        let problems = problems(&missing);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with(&format!("cannot read routes directory `{}`: ", missing.display())));
    }

    #[test]
    fn routes_dir_that_is_a_file_is_an_error_naming_it() {
        let dir = tree(&["GET.wasm"]);
        let file = dir.path().join("GET.wasm");
        assert_eq!(problems(&file), [format!("routes directory `{}` is not a directory", file.display())]);
    }

    #[test]
    fn too_deep_a_tree_is_an_error() {
        let deep = vec!["d"; MAX_DEPTH + 1].join("/");
        let dir = tree(&[&format!("{deep}/GET.wasm")]);
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains(&format!("nested more than {MAX_DEPTH} folders deep")));

        let ok = vec!["d"; MAX_DEPTH].join("/");
        let dir = tree(&[&format!("{ok}/GET.wasm")]);
        assert_eq!(routes(dir.path()).len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed() {
        use std::os::unix::fs::symlink;
        let shared = tree(&["GET.wasm", "inner/POST.wasm"]);
        let dir = tree(&[]);
        symlink(shared.path(), dir.path().join("linked")).expect("symlink dir");
        symlink(shared.path().join("GET.wasm"), dir.path().join("PUT.wasm")).expect("symlink file");
        let files = scan(dir.path()).expect("scan");
        let got: Vec<_> = files.iter().map(|f| (f.route.as_str(), f.method)).collect();
        assert_eq!(
            got,
            [("/", MethodKey::Put), ("/linked", MethodKey::Get), ("/linked/inner", MethodKey::Post),]
        );
        assert_eq!(files[1].path, dir.path().join("linked/GET.wasm"));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_cycle_is_an_error() {
        use std::os::unix::fs::symlink;
        let dir = tree(&["a/GET.wasm"]);
        symlink(dir.path().join("a"), dir.path().join("a/again")).expect("symlink");
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("is a symlink cycle"), "{}", problems[0]);
        assert!(problems[0].contains(&dir.path().join("a/again").display().to_string()));
    }

    #[cfg(unix)]
    #[test]
    fn broken_symlink_is_an_error() {
        use std::os::unix::fs::symlink;
        let dir = tree(&[]);
        symlink(dir.path().join("gone"), dir.path().join("GET.wasm")).expect("symlink");
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].starts_with(&format!("cannot read `{}`: ", dir.path().join("GET.wasm").display()))
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_folder_or_wasm_file_is_an_error() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tree(&["ok/GET.wasm"]);
        fs::create_dir(dir.path().join(OsStr::from_bytes(b"bad\xff"))).expect("mkdir");
        fs::write(dir.path().join(OsStr::from_bytes(b"x\xff.wasm")), b"").expect("write");
        fs::write(dir.path().join(OsStr::from_bytes(b"notes\xff.txt")), b"").expect("write");
        let problems = problems(dir.path());
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems.iter().all(|p| p.ends_with("the name is not valid UTF-8")));
    }

    #[test]
    fn a_tolerant_walk_keeps_every_good_file_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "ok/GET.wasm",
            "bad/get.wasm",
            "bad/POST.wasm",
            "{a}/GET.wasm",
            "{b}/x/GET.wasm",
            "{c d}/GET.wasm",
        ] {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        let scanned = walk(dir.path()).expect("the root is readable");
        let routes: Vec<_> = scanned.files.iter().map(|f| (f.route.as_str(), f.method)).collect();
        assert_eq!(routes, [("/bad", MethodKey::Post), ("/ok", MethodKey::Get), ("/{a}", MethodKey::Get)]);
        let problems: Vec<String> = scanned.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("get.wasm")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("{b}")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("{c d}")), "{problems:#?}");
        assert!(walk(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn scanned_files_build_a_table() {
        let dir =
            tree(&["GET.wasm", "users/me/GET.wasm", "users/{id}/GET.wasm", "users/{id}/posts/GET.wasm"]);
        let files = scan(dir.path()).expect("scan");
        let table = RouteTable::new(files.into_iter().map(|f| {
            let handler = format!("{} {}", f.method, f.route);
            (f, handler)
        }))
        .expect("table");
        assert_eq!(table.len(), 4);
        let Lookup::Found(found) = table.lookup("GET", "/users/me/posts") else {
            panic!("expected a match");
        };
        assert_eq!(found.handler, "GET /users/{id}/posts");
        assert_eq!(found.params, [("id".to_owned(), "me".to_owned())]);
    }

    #[test]
    fn route_of_joins_segments() {
        assert_eq!(route_of([].into_iter()), "/");
        assert_eq!(route_of(["a", "{b}"].into_iter()), "/a/{b}");
    }
}
