//! A handler that fails where and how its query asks, for the guest-fault matrix
//! (`tests/integration/hostile.rs`): `?at=WHERE&fault=HOW[&pull=N]`.
//!
//! - `at`: `before`, `stream` (the first body chunk: send a body), `after`, `chunk` (the `N`th
//!   pull of a chunked response, default 1) or `event` (the `N`th pull of an event stream).
//!   Pulls before the `N`th hand out `chunk K\n` or an event `K`; every pull runs after the
//!   response head is sent.
//! - `fault`: `loop` (spins until the CPU budget ends it), `trap` (`unreachable`), `panic`,
//!   `grow` (allocates and touches 1 MiB at a time until the memory limit stops it), `huge` (one
//!   allocation of 1.5 GiB) or `recurse` (until the stack runs out).
//!
//! Without a fault where it runs, a hook does its ordinary work: `after` answers `ok`, or the
//! chunked or event response that `at=chunk|event` asks for.

use std::hint::black_box;

use wasm_host_sdk::prelude::*;

/// Where and how to fail, from the query.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Plan {
    at: At,
    fault: Fault,
    /// For `at=chunk|event`: the pull that fails, from 1.
    pull: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Before,
    Stream,
    After,
    Chunk,
    Event,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    Loop,
    Trap,
    Panic,
    Grow,
    Huge,
    Recurse,
}

impl Plan {
    fn of(req: &Request) -> Result<Plan, HttpError> {
        let at = match req.query("at").as_deref() {
            Some("before") => At::Before,
            Some("stream") => At::Stream,
            Some("after") => At::After,
            Some("chunk") => At::Chunk,
            Some("event") => At::Event,
            _ => return Err(HttpError::new(400, "?at= is before, stream, after, chunk or event")),
        };
        let fault = match req.query("fault").as_deref() {
            Some("loop") => Fault::Loop,
            Some("trap") => Fault::Trap,
            Some("panic") => Fault::Panic,
            Some("grow") => Fault::Grow,
            Some("huge") => Fault::Huge,
            Some("recurse") => Fault::Recurse,
            _ => return Err(HttpError::new(400, "?fault= is loop, trap, panic, grow, huge or recurse")),
        };
        let pull = req.query("pull").map_or(Ok(1), |n| n.parse())?;
        Ok(Plan { at, fault, pull })
    }

    /// Fails as planned if this is the place.
    fn here(self, at: At) {
        if self.at == at {
            fail(self.fault);
        }
    }
}

/// Fails in the way asked for; never returns.
fn fail(fault: Fault) -> ! {
    match fault {
        Fault::Loop => {
            let mut x = 1u64;
            loop {
                x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        Fault::Trap => core::arch::wasm32::unreachable(),
        Fault::Panic => panic!("the faults handler panics as asked"),
        Fault::Grow => {
            let mut held = Vec::new();
            loop {
                held.push(black_box(vec![1u8; 1 << 20]));
            }
        }
        Fault::Huge => {
            // 1.5 GiB: under `isize::MAX` of a 32-bit target, so this is an allocation (which
            // the memory limit refuses), not a capacity overflow.
            let huge: Vec<u8> = Vec::with_capacity(black_box(3 << 29));
            black_box(huge);
            unreachable!("a 1.5 GiB allocation succeeded past the memory limit")
        }
        Fault::Recurse => {
            black_box(recurse(black_box(1)));
            unreachable!("recursion without end returned")
        }
    }
}

#[expect(unconditional_recursion, reason = "the stack must run out")]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

fn before(req: &Request) -> Option<HttpError> {
    match Plan::of(req) {
        Ok(plan) => {
            plan.here(At::Before);
            None
        }
        Err(e) => Some(e),
    }
}

fn stream(req: &mut Request, _chunk: &[u8]) {
    if let Ok(plan) = Plan::of(req) {
        plan.here(At::Stream);
    }
}

fn after(req: Request) -> Result<Response, HttpError> {
    let plan = Plan::of(&req)?;
    plan.here(At::After);
    let mut pulls = 0u32;
    let mut pull = move |at: At| {
        pulls += 1;
        if pulls == plan.pull {
            plan.here(at);
        }
        pulls
    };
    Ok(match plan.at {
        At::Chunk => Response::chunked(std::iter::repeat_with(move || {
            format!("chunk {}\n", pull(At::Chunk)).into_bytes()
        })),
        At::Event => {
            Response::events(std::iter::repeat_with(move || Event::data(pull(At::Event).to_string())))
        }
        _ => Response::text("ok"),
    })
}

export!(before = before, stream = stream, after = after);
