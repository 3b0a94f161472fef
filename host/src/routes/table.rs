//! The immutable routing table: build once from [`RouteFile`]s and handlers, look up per request.
//!
//! Lookup is on the per-request hot path. It allocates nothing except the params of a
//! [`Match`] and the decoded copy of a segment that actually contains `%`.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use super::{MethodKey, Problem, RouteFile, ScanError, Segment, parse_segment};

/// An immutable routing table; `H` is the loaded handler (generic so this module knows nothing
/// of wasm).
#[derive(Debug)]
pub struct RouteTable<H> {
    /// Sorted by (route, method); nodes index into it.
    entries: Vec<(RouteFile, H)>,
    /// The route tree; `nodes[0]` is the root folder.
    nodes: Vec<Node>,
}

/// One folder of the route tree.
#[derive(Debug, Default)]
struct Node {
    /// Literal child segments, sorted by name for binary search.
    literals: Vec<(Box<str>, usize)>,
    /// The `{var}` child, if any.
    param: Option<usize>,
    /// Index into `entries` per [`MethodKey::index`].
    handlers: [Option<usize>; MethodKey::ALL.len()],
    /// The `Allow` header value for a 405 on this route.
    allow: Box<str>,
    /// The methods the `ANY` handler declares (empty: every method).
    any_declares: Vec<MethodKey>,
}

impl Node {
    fn has_handlers(&self) -> bool {
        self.handlers.iter().any(Option::is_some)
    }

    fn handler(&self, method: MethodKey) -> Option<usize> {
        self.handlers[method.index()]
    }

    /// The entry serving a request method: its own file, else GET for HEAD, else ANY.
    fn resolve(&self, method: &str) -> Option<usize> {
        let key = MethodKey::from_request_method(method);
        if let Some(key) = key
            && let Some(index) = self.handler(key)
        {
            return Some(index);
        }
        if key == Some(MethodKey::Head)
            && let Some(index) = self.handler(MethodKey::Get)
        {
            return Some(index);
        }
        let any = self.handler(MethodKey::Any)?;
        let declared = |k| self.any_declares.contains(&k);
        let served = self.any_declares.is_empty()
            || key.is_some_and(|k| declared(k) || (k == MethodKey::Head && declared(MethodKey::Get)));
        served.then_some(any)
    }
}

/// The result of [`RouteTable::lookup`].
#[derive(Debug)]
#[must_use]
pub enum Lookup<'a, H> {
    /// A handler serves the request.
    Found(Match<'a, H>),
    /// The path matches a route, but it has no handler for the method; `allow` is the
    /// precomputed `Allow` header value, e.g. `"GET, HEAD, PUT"`.
    MethodNotAllowed {
        /// The route's methods, comma-separated, in a fixed order.
        allow: &'a str,
    },
    /// No route matches the path.
    NotFound,
    /// The path cannot be routed safely: a `.` or `..` segment (raw or after decoding), or a
    /// segment that percent-decodes to invalid UTF-8 or contains NUL. The caller answers 400.
    BadPath,
}

/// A handler found for a request.
#[derive(Debug)]
pub struct Match<'a, H> {
    /// The handler.
    pub handler: &'a H,
    /// Its file: route pattern and method (`GET` for a HEAD served by GET, `ANY`…) for logs.
    pub file: &'a RouteFile,
    /// The `{var}` captures in path order: (name, percent-decoded value).
    pub params: Vec<(String, String)>,
}

impl<H> Default for RouteTable<H> {
    /// A table with no routes: every lookup is `NotFound` (or `BadPath`).
    fn default() -> Self {
        RouteTable { entries: Vec::new(), nodes: vec![Node::default()] }
    }
}

impl<H> RouteTable<H> {
    /// Builds the table; the same conflict rules as the directory scan apply: two different
    /// `{var}` segments at one level, a parameter name used twice in a route, or two handlers
    /// for one route and method are errors, as is a malformed route pattern. Every problem is
    /// reported.
    pub fn new(entries: impl IntoIterator<Item = (RouteFile, H)>) -> Result<Self, ScanError> {
        let mut entries: Vec<(RouteFile, H)> = entries.into_iter().collect();
        entries.sort_by(|(a, _), (b, _)| (&a.route, a.method).cmp(&(&b.route, b.method)));

        let files: Vec<&RouteFile> = entries.iter().map(|(file, _)| file).collect();
        let mut tree = TreeBuilder::new(&files);
        let problems: Vec<Problem> = (0..files.len()).filter_map(|index| tree.insert(index).err()).collect();
        if let Some(err) = ScanError::from_problems(problems) {
            return Err(err);
        }
        let mut nodes = tree.nodes;
        for node in &mut nodes {
            node.allow = allow_header(node);
        }
        Ok(RouteTable { entries, nodes })
    }

    /// Finds the handler for a request.
    ///
    /// `raw_path` is the path of the request target as received (percent-encoded, without the
    /// query). The rules:
    ///
    /// - The path is split on `/`; empty segments (from `//` or a trailing slash) are skipped,
    ///   so `/hello/` matches `/hello` and `/` matches the root folder. Each segment is
    ///   percent-decoded, then matched exactly (case-sensitive) against folder names. An
    ///   encoded slash `%2F` stays inside its segment: it never splits the path, so it can only
    ///   be captured by a `{var}`.
    /// - A `.` or `..` segment (raw or decoded), or one decoding to invalid UTF-8 or holding
    ///   NUL, makes the whole path [`Lookup::BadPath`], whatever the routes.
    /// - A literal folder beats a `{var}` folder at the same level. If the literal branch finds
    ///   no route deeper down, the `{var}` branch is tried (backtracking). A folder without
    ///   handler files is not a route, so matching goes on past it.
    /// - The first route found answers for every method: method resolution never backtracks
    ///   to another route. On that route: the exact method file; else HEAD falls back to GET;
    ///   else `ANY`; else [`Lookup::MethodNotAllowed`]. Methods without a file name of their
    ///   own (`PROPFIND`, lowercase `get`) can only be served by `ANY`.
    pub fn lookup<'a>(&'a self, method: &str, raw_path: &str) -> Lookup<'a, H> {
        if !raw_segments(raw_path).all(segment_is_routable) {
            return Lookup::BadPath;
        }
        let Some(node) = self.find(0, raw_segments(raw_path)) else {
            return Lookup::NotFound;
        };
        let node = &self.nodes[node];
        let Some(index) = node.resolve(method) else {
            return Lookup::MethodNotAllowed { allow: &node.allow };
        };
        let (file, handler) = &self.entries[index];
        Lookup::Found(Match { handler, file, params: params(&file.route, raw_path) })
    }

    /// The route node for the remaining raw segments below `node`, literal first.
    fn find<'p>(&self, node: usize, mut rest: impl Iterator<Item = &'p str> + Clone) -> Option<usize> {
        let here = &self.nodes[node];
        let Some(raw) = rest.next() else {
            return here.has_handlers().then_some(node);
        };
        if !here.literals.is_empty() {
            let segment = decode_segment(raw);
            if let Ok(i) = here.literals.binary_search_by(|(n, _)| (**n).cmp(&*segment))
                && let Some(found) = self.find(here.literals[i].1, rest.clone())
            {
                return Some(found);
            }
        }
        self.find(here.param?, rest)
    }

    /// Every (route pattern, method, file, handler) in (route, method) order, for the route
    /// listing.
    pub fn entries(&self) -> impl Iterator<Item = (&RouteFile, &H)> {
        self.entries.iter().map(|(file, handler)| (file, handler))
    }

    /// The number of handler files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no handler files.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Builds the node tree from sorted route files, checking the conflict rules.
struct TreeBuilder<'e> {
    files: &'e [&'e RouteFile],
    nodes: Vec<Node>,
    /// Per node: the `{var}` segment of its param child and the file that introduced it.
    param_origin: Vec<Option<(&'e str, usize)>>,
}

impl<'e> TreeBuilder<'e> {
    fn new(files: &'e [&'e RouteFile]) -> Self {
        TreeBuilder { files, nodes: vec![Node::default()], param_origin: vec![None] }
    }

    /// Adds `files[index]` to the tree, or says why it cannot be.
    fn insert(&mut self, index: usize) -> Result<(), Problem> {
        let file = self.files[index];
        let segments = route_segments(&file.route).map_err(|reason| Problem::InvalidRoute {
            path: file.path.clone(),
            route: file.route.clone(),
            reason,
        })?;
        let mut node = 0;
        let mut seen_params: Vec<&str> = Vec::new();
        for (raw, segment) in segments {
            node = match segment {
                Segment::Literal(name) => self.literal_child(node, name),
                Segment::Param(name) => {
                    if seen_params.contains(&name) {
                        return Err(Problem::DuplicateParamName {
                            path: file.path.clone(),
                            route: file.route.clone(),
                            name: name.to_owned(),
                        });
                    }
                    seen_params.push(name);
                    self.param_child(node, raw, index)?
                }
            };
        }
        let slot = &mut self.nodes[node].handlers[file.method.index()];
        if let Some(first) = *slot {
            return Err(Problem::DuplicateHandler {
                route: file.route.clone(),
                method: file.method,
                first: self.files[first].path.clone(),
                second: file.path.clone(),
            });
        }
        *slot = Some(index);
        if file.method == MethodKey::Any {
            self.nodes[node].any_declares = file.declares.clone();
        }
        Ok(())
    }

    fn literal_child(&mut self, node: usize, name: &str) -> usize {
        let literals = &self.nodes[node].literals;
        match literals.binary_search_by(|(n, _)| (**n).cmp(name)) {
            Ok(i) => literals[i].1,
            Err(i) => {
                let child = self.push_node();
                self.nodes[node].literals.insert(i, (name.into(), child));
                child
            }
        }
    }

    /// The child for the `{var}` segment `raw`, unless the node has a different one already.
    fn param_child(&mut self, node: usize, raw: &'e str, index: usize) -> Result<usize, Problem> {
        match (self.nodes[node].param, self.param_origin[node]) {
            (Some(child), Some((existing, _))) if existing == raw => Ok(child),
            (_, Some((existing, first))) => Err(Problem::ConflictingParams {
                first: self.files[first].path.clone(),
                first_name: existing.to_owned(),
                second: self.files[index].path.clone(),
                second_name: raw.to_owned(),
            }),
            _ => {
                let child = self.push_node();
                self.nodes[node].param = Some(child);
                self.param_origin[node] = Some((raw, index));
                Ok(child)
            }
        }
    }

    fn push_node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.param_origin.push(None);
        self.nodes.len() - 1
    }
}

/// Splits and checks a route pattern: `/` or `/seg/...` with no empty, `.` or `..` segment
/// and valid `{name}` segments. Yields (raw segment, parsed segment).
fn route_segments(route: &str) -> Result<Vec<(&str, Segment<'_>)>, &'static str> {
    let rest = route.strip_prefix('/').ok_or("it must start with `/`")?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|raw| match raw {
            "" => Err("it has an empty segment"),
            "." | ".." => Err("it has a `.` or `..` segment"),
            _ => parse_segment(raw)
                .map(|segment| (raw, segment))
                .ok_or("a segment has braces but is not `{name}`"),
        })
        .collect()
}

/// The `Allow` value for a node: its methods in [`MethodKey::ALL`] order (an `ANY` handler's
/// declared methods included), HEAD added when GET exists. Empty for a node without handlers or
/// with an `ANY` that declares nothing (it serves every method, so never answers 405).
fn allow_header(node: &Node) -> Box<str> {
    let any = node.handler(MethodKey::Any).is_some();
    if !node.has_handlers() || (any && node.any_declares.is_empty()) {
        return Box::default();
    }
    let has = |key| node.handler(key).is_some() || (any && node.any_declares.contains(&key));
    let has_get = has(MethodKey::Get);
    MethodKey::ALL
        .into_iter()
        .filter(|&key| key != MethodKey::Any && (has(key) || (key == MethodKey::Head && has_get)))
        .map(MethodKey::as_str)
        .collect::<Vec<_>>()
        .join(", ")
        .into_boxed_str()
}

/// The non-empty raw segments of a request path.
fn raw_segments(raw_path: &str) -> impl Iterator<Item = &str> + Clone {
    raw_path.split('/').filter(|segment| !segment.is_empty())
}

/// Percent-decodes a segment already checked by [`segment_is_routable`]; borrows unless it
/// contains `%`.
fn decode_segment(raw: &str) -> Cow<'_, str> {
    if raw.contains('%') { percent_decode_str(raw).decode_utf8_lossy() } else { Cow::Borrowed(raw) }
}

/// The params of a matched route: its `{name}` segments paired with the request's decoded
/// segments at the same positions.
fn params(route: &str, raw_path: &str) -> Vec<(String, String)> {
    route
        .split('/')
        .filter(|segment| !segment.is_empty())
        .zip(raw_segments(raw_path))
        .filter_map(|(pattern, raw)| match parse_segment(pattern) {
            Some(Segment::Param(name)) => Some((name.to_owned(), decode_segment(raw).into_owned())),
            _ => None,
        })
        .collect()
}

/// Whether a raw segment decodes to valid UTF-8 without NUL and is not `.` or `..`.
///
/// Allocation-free: decoded bytes go through a small stack buffer, validated chunk by chunk.
fn segment_is_routable(raw: &str) -> bool {
    if !raw.contains('%') {
        return raw != "." && raw != ".." && !raw.contains('\0');
    }
    let mut buf = [0u8; 64];
    let mut len = 0;
    let mut decoded_len = 0usize;
    let mut all_dots = true;
    for byte in percent_decode_str(raw) {
        if byte == 0 {
            return false;
        }
        decoded_len += 1;
        all_dots &= byte == b'.';
        buf[len] = byte;
        len += 1;
        if len == buf.len() {
            match std::str::from_utf8(&buf) {
                Ok(_) => len = 0,
                // A character cut by the end of the buffer: keep its first bytes (at most 3).
                Err(err) if err.error_len().is_none() => {
                    let valid = err.valid_up_to();
                    buf.copy_within(valid.., 0);
                    len -= valid;
                }
                Err(_) => return false,
            }
        }
    }
    std::str::from_utf8(&buf[..len]).is_ok() && !(all_dots && decoded_len <= 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_that_declares_methods_answers_405_with_allow_for_the_others() {
        let file = |method, declares: &[MethodKey]| RouteFile {
            route: "/items".into(),
            method,
            path: format!("routes/items/{}", method.file_name()).into(),
            declares: declares.to_vec(),
        };
        let table = RouteTable::new([
            (file(MethodKey::Any, &[MethodKey::Get, MethodKey::Post, MethodKey::Delete]), "any"),
            (file(MethodKey::Put, &[]), "put"),
        ])
        .unwrap();
        let served = |method| match table.lookup(method, "/items") {
            Lookup::Found(m) => Some(*m.handler),
            _ => None,
        };
        assert_eq!(served("GET"), Some("any"));
        assert_eq!(served("HEAD"), Some("any"), "HEAD is served by a declared GET");
        assert_eq!(served("DELETE"), Some("any"));
        assert_eq!(served("PUT"), Some("put"), "a method file wins over ANY");
        match table.lookup("PATCH", "/items") {
            Lookup::MethodNotAllowed { allow } => assert_eq!(allow, "GET, HEAD, POST, PUT, DELETE"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(table.lookup("PROPFIND", "/items"), Lookup::MethodNotAllowed { .. }));
    }

    /// A table whose handlers are "METHOD /route" strings, from "route/METHOD" specs.
    fn table(specs: &[&str]) -> RouteTable<String> {
        RouteTable::new(specs.iter().map(|spec| {
            let (route, method) = spec.rsplit_once('/').expect("spec has a method");
            let route = if route.is_empty() { "/" } else { route };
            let method = MethodKey::from_file_name(&format!("{method}.wasm")).expect("method");
            let file = RouteFile {
                declares: Vec::new(),
                route: route.to_owned(),
                method,
                path: format!("routes{}/{}", route.trim_end_matches('/'), method.file_name()).into(),
            };
            (file, format!("{method} {route}"))
        }))
        .expect("valid table")
    }

    /// The handler a lookup finds, or a short name for the other outcomes.
    fn hit(table: &RouteTable<String>, method: &str, path: &str) -> String {
        match table.lookup(method, path) {
            Lookup::Found(found) => found.handler.clone(),
            Lookup::MethodNotAllowed { allow } => format!("405 {allow}"),
            Lookup::NotFound => "404".to_owned(),
            Lookup::BadPath => "400".to_owned(),
        }
    }

    fn params_of(table: &RouteTable<String>, method: &str, path: &str) -> Vec<(String, String)> {
        match table.lookup(method, path) {
            Lookup::Found(found) => found.params,
            _ => panic!("{method} {path} should match"),
        }
    }

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn build_problems(routes: &[(&str, MethodKey, &str)]) -> Vec<String> {
        RouteTable::new(routes.iter().map(|(route, method, path)| {
            let file = RouteFile {
                route: (*route).to_owned(),
                method: *method,
                path: (*path).into(),
                declares: Vec::new(),
            };
            (file, ())
        }))
        .expect_err("table should be rejected")
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn root_path_matches_root_files() {
        let t = table(&["/GET", "/hello/GET"]);
        assert_eq!(hit(&t, "GET", "/"), "GET /");
        assert_eq!(hit(&t, "GET", ""), "GET /");
        assert_eq!(hit(&t, "GET", "//"), "GET /");
    }

    #[test]
    fn literal_folder_matches_its_segment() {
        let t = table(&["/hello/GET", "/a/b/c/GET"]);
        assert_eq!(hit(&t, "GET", "/hello"), "GET /hello");
        assert_eq!(hit(&t, "GET", "/a/b/c"), "GET /a/b/c");
    }

    #[test]
    fn literal_match_is_case_sensitive() {
        let t = table(&["/hello/GET"]);
        assert_eq!(hit(&t, "GET", "/Hello"), "404");
    }

    #[test]
    fn param_folder_captures_one_segment() {
        let t = table(&["/users/{id}/GET"]);
        assert_eq!(hit(&t, "GET", "/users/42"), "GET /users/{id}");
        assert_eq!(params_of(&t, "GET", "/users/42"), pairs(&[("id", "42")]));
        assert_eq!(hit(&t, "GET", "/users"), "404");
        assert_eq!(hit(&t, "GET", "/users/42/more"), "404");
    }

    #[test]
    fn params_are_in_path_order_and_decoded() {
        let t = table(&["/{org}/repos/{repo}/GET"]);
        assert_eq!(
            params_of(&t, "GET", "/acme%20inc/repos/r%C3%A9po"),
            pairs(&[("org", "acme inc"), ("repo", "répo")])
        );
    }

    #[test]
    fn literal_beats_param() {
        let t = table(&["/users/me/GET", "/users/{id}/GET"]);
        assert_eq!(hit(&t, "GET", "/users/me"), "GET /users/me");
        assert!(params_of(&t, "GET", "/users/me").is_empty());
        assert_eq!(hit(&t, "GET", "/users/you"), "GET /users/{id}");
    }

    #[test]
    fn literal_branch_backtracks_to_param() {
        let t = table(&["/users/me/GET", "/users/{id}/posts/GET"]);
        assert_eq!(hit(&t, "GET", "/users/me/posts"), "GET /users/{id}/posts");
        assert_eq!(params_of(&t, "GET", "/users/me/posts"), pairs(&[("id", "me")]));
        assert_eq!(hit(&t, "GET", "/users/me"), "GET /users/me");
    }

    #[test]
    fn backtracking_explores_every_level() {
        let t = table(&["/a/b/c/x/GET", "/a/{p}/c/y/GET", "/{q}/b/c/z/GET"]);
        assert_eq!(hit(&t, "GET", "/a/b/c/x"), "GET /a/b/c/x");
        assert_eq!(hit(&t, "GET", "/a/b/c/y"), "GET /a/{p}/c/y");
        assert_eq!(hit(&t, "GET", "/a/b/c/z"), "GET /{q}/b/c/z");
        assert_eq!(params_of(&t, "GET", "/a/b/c/z"), pairs(&[("q", "a")]));
        assert_eq!(hit(&t, "GET", "/a/b/c/w"), "404");
    }

    #[test]
    fn folder_without_handlers_is_not_a_route() {
        let t = table(&["/users/me/posts/latest/GET", "/users/{id}/posts/GET"]);
        // `/users/me/posts` exists as a folder but has no files: the param route answers.
        assert_eq!(hit(&t, "GET", "/users/me/posts"), "GET /users/{id}/posts");
        assert_eq!(hit(&t, "GET", "/users"), "404");
        assert_eq!(hit(&t, "GET", "/users/me"), "404");
    }

    #[test]
    fn method_resolution_does_not_backtrack() {
        let t = table(&["/users/me/GET", "/users/{id}/DELETE"]);
        assert_eq!(hit(&t, "DELETE", "/users/me"), "405 GET, HEAD");
        assert_eq!(hit(&t, "DELETE", "/users/7"), "DELETE /users/{id}");
    }

    #[test]
    fn unmatched_path_is_not_found() {
        let t = table(&["/hello/GET"]);
        assert_eq!(hit(&t, "GET", "/nope"), "404");
        assert_eq!(hit(&t, "GET", "/hello/nope"), "404");
        assert_eq!(hit(&t, "GET", "/"), "404");
        assert_eq!(hit(&t, "GET", "/hello"), "GET /hello");
    }

    #[test]
    fn empty_segments_are_skipped() {
        let t = table(&["/hello/world/GET"]);
        for path in ["/hello/world/", "//hello//world", "/hello/world//", "hello/world"] {
            assert_eq!(hit(&t, "GET", path), "GET /hello/world", "{path}");
        }
    }

    #[test]
    fn segments_are_percent_decoded_before_matching() {
        let t = table(&["/hello-world/GET", "/caf\u{e9}/GET", "/a b/GET"]);
        assert_eq!(hit(&t, "GET", "/hello%2Dworld"), "GET /hello-world");
        assert_eq!(hit(&t, "GET", "/hello%2dworld"), "GET /hello-world");
        assert_eq!(hit(&t, "GET", "/caf%C3%A9"), "GET /caf\u{e9}");
        assert_eq!(hit(&t, "GET", "/a%20b"), "GET /a b");
        // Invalid escapes stay as they are.
        assert_eq!(hit(&t, "GET", "/hello%2"), "404");
    }

    #[test]
    fn folder_names_match_decoded_segments_only() {
        let t = table(&["/a%20b/GET"]);
        assert_eq!(hit(&t, "GET", "/a%20b"), "404");
        assert_eq!(hit(&t, "GET", "/a%2520b"), "GET /a%20b");
    }

    #[test]
    fn encoded_slash_never_splits_the_path() {
        let t = table(&["/a/b/GET", "/files/{name}/GET"]);
        assert_eq!(hit(&t, "GET", "/a%2Fb"), "404");
        assert_eq!(hit(&t, "GET", "/a%2fb"), "404");
        assert_eq!(hit(&t, "GET", "/files/x%2F..%2Fy"), "GET /files/{name}");
    }

    #[test]
    fn encoded_slash_is_captured_by_a_param() {
        let t = table(&["/files/{name}/GET"]);
        assert_eq!(params_of(&t, "GET", "/files/dir%2Ffile.txt"), pairs(&[("name", "dir/file.txt")]));
        assert_eq!(params_of(&t, "GET", "/files/%2F"), pairs(&[("name", "/")]));
    }

    #[test]
    fn dot_segments_are_bad_path() {
        let t = table(&["/{a}/{b}/GET", "/{a}/GET"]);
        for path in ["/.", "/..", "/a/..", "/a/./b", "/%2e", "/%2E%2e", "/.%2e", "/%2e.", "/a/%2e%2e"] {
            assert_eq!(hit(&t, "GET", path), "400", "{path}");
        }
        for path in ["/...", "/.a", "/%2e%2e%2e", "/a."] {
            assert_ne!(hit(&t, "GET", path), "400", "{path}");
        }
    }

    #[test]
    fn invalid_utf8_is_bad_path() {
        let t = table(&["/{a}/GET"]);
        for path in ["/%ff", "/%C3", "/%C3%28", "/a%ED%A0%80"] {
            assert_eq!(hit(&t, "GET", path), "400", "{path}");
        }
    }

    #[test]
    fn nul_is_bad_path() {
        let t = table(&["/{a}/GET"]);
        assert_eq!(hit(&t, "GET", "/a%00b"), "400");
        assert_eq!(hit(&t, "GET", "/a\0b"), "400");
    }

    #[test]
    fn bad_path_wins_over_not_found() {
        let t = table(&["/hello/GET"]);
        assert_eq!(hit(&t, "GET", "/nope/.."), "400");
        assert_eq!(hit(&t, "GET", "/hello/%ff"), "400");
        assert!(matches!(RouteTable::<()>::default().lookup("GET", "/.."), Lookup::BadPath));
    }

    #[test]
    fn long_segments_are_validated_across_buffer_chunks() {
        let t = table(&["/{a}/GET"]);
        // A two-byte character straddling every chunk boundary of the validator.
        for prefix in 0..130 {
            let a = "a".repeat(prefix);
            let path = format!("/{a}%C3%A9{a}%E2%82%AC");
            assert_eq!(
                params_of(&t, "GET", &path),
                pairs(&[("a", &format!("{a}\u{e9}{a}\u{20ac}"))]),
                "{prefix}"
            );
            assert_eq!(hit(&t, "GET", &format!("/{a}%C3{a}")), "400", "{prefix}");
            assert_eq!(hit(&t, "GET", &format!("/{a}%C3")), "400", "{prefix}");
        }
    }

    #[test]
    fn exact_method_file_wins_over_any() {
        let t = table(&["/files/ANY", "/files/GET"]);
        assert_eq!(hit(&t, "GET", "/files"), "GET /files");
        assert_eq!(hit(&t, "POST", "/files"), "ANY /files");
    }

    #[test]
    fn head_falls_back_to_get() {
        let t = table(&["/hello/GET", "/both/GET", "/both/HEAD", "/any/GET", "/any/ANY"]);
        assert_eq!(hit(&t, "HEAD", "/hello"), "GET /hello");
        assert_eq!(hit(&t, "HEAD", "/both"), "HEAD /both");
        // GET beats ANY for HEAD.
        assert_eq!(hit(&t, "HEAD", "/any"), "GET /any");
        let Lookup::Found(found) = t.lookup("HEAD", "/hello") else {
            panic!("HEAD /hello should match");
        };
        assert_eq!(found.file.method, MethodKey::Get);
    }

    #[test]
    fn any_serves_unlisted_methods() {
        let t = table(&["/files/ANY"]);
        for method in ["GET", "HEAD", "DELETE", "PROPFIND", "get", "ANY"] {
            assert_eq!(hit(&t, method, "/files"), "ANY /files", "{method}");
        }
    }

    #[test]
    fn route_with_any_never_gives_405() {
        let t = table(&["/files/ANY", "/files/PUT"]);
        for method in ["GET", "HEAD", "POST", "OPTIONS", "BREW"] {
            assert_eq!(hit(&t, method, "/files"), "ANY /files", "{method}");
        }
        assert_eq!(hit(&t, "PUT", "/files"), "PUT /files");
    }

    #[test]
    fn missing_method_gives_405_with_allow_in_fixed_order() {
        let t = table(&["/r/OPTIONS", "/r/DELETE", "/r/PATCH", "/r/PUT", "/r/POST", "/r/HEAD"]);
        assert_eq!(hit(&t, "GET", "/r"), "405 HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    }

    #[test]
    fn allow_adds_head_when_get_exists() {
        let t = table(&["/users/{id}/PUT", "/users/{id}/GET"]);
        assert_eq!(hit(&t, "POST", "/users/1"), "405 GET, HEAD, PUT");
        let t = table(&["/both/GET", "/both/HEAD"]);
        assert_eq!(hit(&t, "POST", "/both"), "405 GET, HEAD");
    }

    #[test]
    fn unlisted_method_without_any_gives_405() {
        let t = table(&["/hello/GET"]);
        assert_eq!(hit(&t, "PROPFIND", "/hello"), "405 GET, HEAD");
        assert_eq!(hit(&t, "get", "/hello"), "405 GET, HEAD");
        assert_eq!(hit(&t, "ANY", "/hello"), "405 GET, HEAD");
    }

    #[test]
    fn entries_are_sorted_by_route_and_method() {
        let t = table(&["/users/{id}/PUT", "/b/GET", "/users/{id}/GET", "/ANY", "/GET"]);
        let got: Vec<_> = t.entries().map(|(f, h)| (f.route.as_str(), f.method, h.as_str())).collect();
        assert_eq!(
            got,
            [
                ("/", MethodKey::Get, "GET /"),
                ("/", MethodKey::Any, "ANY /"),
                ("/b", MethodKey::Get, "GET /b"),
                ("/users/{id}", MethodKey::Get, "GET /users/{id}"),
                ("/users/{id}", MethodKey::Put, "PUT /users/{id}"),
            ]
        );
        assert_eq!(t.len(), 5);
        assert!(!t.is_empty());
        assert!(RouteTable::<()>::default().is_empty());
    }

    #[test]
    fn sibling_params_are_rejected_naming_both_files() {
        let problems = build_problems(&[
            ("/users/{id}", MethodKey::Get, "r/users/{id}/GET.wasm"),
            ("/users/{name}/posts", MethodKey::Get, "r/users/{name}/posts/GET.wasm"),
        ]);
        assert_eq!(
            problems,
            ["`r/users/{id}/GET.wasm` and `r/users/{name}/posts/GET.wasm` are both parameter \
              folders at one level (`{id}` and `{name}`); keep one"]
        );
    }

    #[test]
    fn same_param_in_two_routes_is_shared() {
        let t = table(&["/users/{id}/GET", "/users/{id}/posts/GET", "/users/{id}/PUT"]);
        assert_eq!(hit(&t, "PUT", "/users/3"), "PUT /users/{id}");
        assert_eq!(hit(&t, "GET", "/users/3/posts"), "GET /users/{id}/posts");
    }

    #[test]
    fn duplicate_route_and_method_is_rejected() {
        let problems = build_problems(&[
            ("/a", MethodKey::Get, "one/a/GET.wasm"),
            ("/a", MethodKey::Get, "two/a/GET.wasm"),
        ]);
        assert_eq!(problems, ["`one/a/GET.wasm` and `two/a/GET.wasm` both handle GET `/a`"]);
    }

    #[test]
    fn duplicate_param_name_is_rejected() {
        let problems = build_problems(&[("/a/{id}/b/{id}", MethodKey::Get, "f")]);
        assert_eq!(problems, ["`f`: parameter `id` appears twice in route `/a/{id}/b/{id}`"]);
    }

    #[test]
    fn malformed_route_patterns_are_rejected() {
        let problems = build_problems(&[
            ("", MethodKey::Get, "f1"),
            ("a", MethodKey::Get, "f2"),
            ("/a/", MethodKey::Get, "f3"),
            ("/a//b", MethodKey::Get, "f4"),
            ("/a/..", MethodKey::Get, "f5"),
            ("/{1x}", MethodKey::Get, "f6"),
            ("/{a}b", MethodKey::Get, "f7"),
        ]);
        assert_eq!(problems.len(), 7, "{problems:#?}");
        assert_eq!(problems[0], "`f1`: invalid route pattern ``: it must start with `/`");
        assert_eq!(
            problems[4],
            "`f6`: invalid route pattern `/{1x}`: a segment has braces but is not `{name}`"
        );
    }

    #[test]
    fn every_build_problem_is_reported() {
        let problems = build_problems(&[
            ("/a", MethodKey::Get, "a1"),
            ("/a", MethodKey::Get, "a2"),
            ("/u/{x}", MethodKey::Get, "x"),
            ("/u/{y}", MethodKey::Get, "y"),
            ("bad", MethodKey::Get, "bad"),
        ]);
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }

    #[test]
    fn segment_validation_needs_no_decoding_without_percent() {
        assert!(segment_is_routable("plain"));
        assert!(segment_is_routable("100%"));
        assert!(segment_is_routable("%zz"));
        assert!(!segment_is_routable(".."));
        assert!(matches!(decode_segment("plain"), Cow::Borrowed("plain")));
        assert!(matches!(decode_segment("100%"), Cow::Borrowed("100%")));
        assert!(matches!(decode_segment("a%20b"), Cow::Owned(s) if s == "a b"));
    }
}
