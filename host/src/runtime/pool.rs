//! Sizing the pooling allocator from the instance budget, and refusing a budget the machine
//! cannot hold. [`plan`] is pure arithmetic over a [`Machine`] snapshot (unit-tested here);
//! [`Machine::probe`] reads what it needs from `/proc`; [`PoolPlan::apply`] configures wasmtime.
//!
//! Two resources of the machine bound how many instances can be alive at once, and neither
//! fails gracefully at run time, so both are checked at start-up:
//!
//! - **Memory mappings** (`vm.max_map_count`, 65,530 by default). Each pooled fiber stack is two
//!   mappings from the start (the stack and its guard page), and each memory slot becomes two
//!   once used (its accessible part splits off the slot's inaccessible rest) and keeps them as
//!   a warm slot. Copy-on-write memory images would make that four (measured), so they are off.
//!   Past the limit every `mmap`/`mprotect` of the process fails, so the pool must run out
//!   first: memory slots are capped by what the mappings allow.
//! - **Address space.** Each memory slot reserves 4 GiB plus a guard region, so that compiled
//!   code needs no bounds checks; all slots are one reservation, which must fit in the largest
//!   free range below the 47-bit user limit (and under `RLIMIT_AS`). When it does not, each
//!   slot reserves only `--max-memory` (bounds-checked code, slower on CPU-bound guests).
//!
//! Must not know about requests or HTTP.

use std::fmt;

use wasmtime::{Config, PoolingAllocationConfig};

use crate::config::RuntimeLimits;

/// The reservation per memory slot when it fits: 4 GiB covers every 32-bit address, so
/// compiled code needs no bounds checks. A smaller one made CPU-bound guest code 24–55 %
/// slower (see `shared/WASMTIME-48.md`).
pub const FULL_RESERVATION: u64 = 4 << 30;

/// The guard region after each memory slot (wasmtime's default on 64-bit hosts), set
/// explicitly so the reservation computed here is the one wasmtime makes. One more guard
/// precedes the first slot.
pub const MEMORY_GUARD: u64 = 32 << 20;

/// Fiber stack of each live store (wasmtime's default). Only the pages a call touches become
/// resident (≈8 KiB for a sleeping handler); the size bounds host code plus the guest's 512 KiB
/// wasm stack.
pub const STACK_SIZE: u64 = 2 << 20;

/// Elements of each pooled table (wasmtime's default): 8 bytes each, reserved per table slot,
/// resident only where written.
pub const TABLE_ELEMENTS: usize = 20_000;

/// Mappings each pooled fiber stack costs from start-up: the stack and its guard page.
pub const MAPPINGS_PER_STACK: u64 = 2;

/// Mappings each memory slot costs once used (and keeps, as a warm slot): its accessible part
/// and the inaccessible rest of its reservation. Measured with `memory_init_cow(false)`; with
/// copy-on-write images it is 4.
pub const MAPPINGS_PER_MEMORY: u64 = 2;

/// Mappings kept free for what the process maps after start-up: threads (tokio's blocking
/// pool grows to 512, each a stack and a guard page), malloc arenas, and the code of handlers
/// loaded or reloaded later (2–4 mappings each).
pub const MAPPING_HEADROOM: u64 = 1_200;

/// Address space kept free beside the pools, for the heap, thread stacks and handler code.
pub const ADDRESS_HEADROOM: u64 = 64 << 30;

/// Memory slots per instance when the mappings allow. A wit-bindgen Rust component has one
/// linear memory; components from other toolchains may have more. Past the slots, instantiation
/// fails and the request gets 503 (`GuestError::Instantiate`).
pub const MEMORIES_PER_INSTANCE: u64 = 2;

/// Table slots per instance: a wit-bindgen Rust component has 2, plus slack. Tables cost no
/// mappings (the table pool is one accessible mapping), only address space.
pub const TABLES_PER_INSTANCE: u32 = 3;

/// Core instance slots per instance: a wit-bindgen Rust component has 3, plus slack. They are
/// only counters.
pub const CORE_INSTANCES_PER_INSTANCE: u32 = 4;

/// Slots beyond `--max-instances` for the throwaway instance `Runtime::load` creates to ask a
/// handler which methods it implements (loads run one at a time, outside the instance budget),
/// so a reload never finds the pool full.
pub const PROBE_SLOTS: u32 = 1;

/// The 47-bit user address space of x86-64 and aarch64 Linux (without 5-level-paging hints).
const USER_ADDRESS_END: u64 = 1 << 47;

const WASM_PAGE: u64 = 64 << 10;
const HOST_PAGE: u64 = 4 << 10;

/// What the machine allows this process, read once at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// `vm.max_map_count`: the most memory mappings a process may have (`None`: unknown, not
    /// checked).
    pub max_map_count: Option<u64>,
    /// Mappings the process has now.
    pub mappings: u64,
    /// The largest unmapped range of the user address space: the memory pool is one
    /// reservation and must fit in one range.
    pub largest_gap: u64,
    /// `RLIMIT_AS` less what is mapped now, when a limit is set (`ulimit -v`).
    pub address_limit_left: Option<u64>,
}

impl Machine {
    /// Reads `/proc/sys/vm/max_map_count`, `/proc/self/maps` and `/proc/self/limits`. What
    /// cannot be read is not checked.
    pub fn probe() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let max_map_count = read("/proc/sys/vm/max_map_count").and_then(|s| s.trim().parse().ok());
        let (mappings, largest_gap, mapped) = match read("/proc/self/maps") {
            Some(maps) => scan_maps(&maps),
            None => (0, USER_ADDRESS_END, 0),
        };
        let address_limit_left = read("/proc/self/limits")
            .and_then(|l| address_limit(&l))
            .map(|limit| limit.saturating_sub(mapped));
        Self { max_map_count, mappings, largest_gap, address_limit_left }
    }
}

/// (mappings, largest gap below [`USER_ADDRESS_END`], bytes mapped) of a `/proc/PID/maps` text.
fn scan_maps(maps: &str) -> (u64, u64, u64) {
    let (mut count, mut largest, mut mapped, mut end) = (0, 0, 0, HOST_PAGE * 16);
    for line in maps.lines() {
        let Some((range, _)) = line.split_once(' ') else { continue };
        let Some((start, stop)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(stop)) = (u64::from_str_radix(start, 16), u64::from_str_radix(stop, 16)) else {
            continue;
        };
        count += 1;
        mapped += stop.saturating_sub(start);
        if start >= USER_ADDRESS_END {
            continue; // [vsyscall]
        }
        largest = largest.max(start.saturating_sub(end));
        end = end.max(stop);
    }
    largest = largest.max(USER_ADDRESS_END.saturating_sub(end));
    (count, largest, mapped)
}

/// The soft `Max address space` of a `/proc/PID/limits` text, if not unlimited.
fn address_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..].split_whitespace().next()?.parse().ok()
}

/// How the pool is sized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    /// Component instance slots: `--max-instances` plus [`PROBE_SLOTS`].
    pub instances: u32,
    /// Fiber stacks: one per instance slot (an idle store keeps its stack).
    pub stacks: u32,
    /// Linear memory slots.
    pub memories: u32,
    /// Table slots.
    pub tables: u32,
    /// Core instance slots.
    pub core_instances: u32,
    /// Address space each memory slot reserves (before its guard region).
    pub reservation: u64,
    /// `--max-memory`, rounded up to whole wasm pages.
    pub max_memory: u64,
    /// Mappings the process may reach with every slot in use (`None` when
    /// `vm.max_map_count` is unknown).
    pub mappings: u64,
}

impl PoolPlan {
    /// Whether each memory slot reserves the whole 32-bit range (no bounds checks).
    pub fn full_reservation(&self) -> bool {
        self.reservation >= FULL_RESERVATION
    }

    /// Address space of all memory slots together.
    pub fn memory_bytes(&self) -> u64 {
        slab_bytes(u64::from(self.memories), self.reservation)
    }

    /// Sets the pool's slot counts and sizes, and the engine settings they depend on.
    pub fn apply(&self, pool: &mut PoolingAllocationConfig, config: &mut Config) {
        pool.total_component_instances(self.instances)
            .total_core_instances(self.core_instances)
            .total_memories(self.memories)
            .total_tables(self.tables)
            .total_stacks(self.stacks)
            .table_elements(TABLE_ELEMENTS)
            .max_memory_size(usize::try_from(self.max_memory).unwrap_or(usize::MAX));
        config
            .memory_reservation(self.reservation)
            .memory_guard_size(MEMORY_GUARD)
            .guard_before_linear_memory(true)
            .async_stack_size(STACK_SIZE as usize)
            // Copy-on-write images cost each memory slot 4 mappings instead of 2, which caps
            // live instances near 10,800 under the default vm.max_map_count; without them the
            // data segments are copied at instantiation. Hello world measured the same either
            // way (≈57k req/s, 64 connections, 2 cores), and so did RSS per instance (the image
            // pages a guest reads count as resident too). Interpreters with large images
            // (componentize-py ≈18 MB, componentize-js ≈12 MB) were mixed, fresh instances, 2
            // connections, three alternating runs: Python of our world 200 → 385 req/s with
            // images, Python wasi:http 195 → 157, JavaScript 690 → 555; perf put half the time
            // with images in TLB-shootdown IPIs from remapping them (`native_write_msr`,
            // `smp_call_function_many_cond`) on this virtual machine. See README, *Handlers in
            // other languages*.
            .memory_init_cow(false);
    }
}

/// The pool cannot be sized for the limits on this machine.
#[derive(Debug, PartialEq, Eq)]
pub enum PoolError {
    /// More mappings than `vm.max_map_count` allows.
    MapCount {
        /// `--max-instances`.
        max_instances: u32,
        /// Mappings needed with one memory slot per instance.
        needed: u64,
        /// Mappings counted for the rest of the process (now plus [`MAPPING_HEADROOM`]).
        rest: u64,
        /// `vm.max_map_count`.
        max_map_count: u64,
        /// The largest `--max-instances` that fits.
        most: u64,
    },
    /// The memory slots do not fit in the free address space.
    AddressSpace {
        /// `--max-instances`.
        max_instances: u32,
        /// `--max-memory`, rounded up to whole wasm pages.
        max_memory: u64,
        /// Memory slots needed (one per instance slot).
        slots: u64,
        /// Address space those slots need at `--max-memory` each.
        needed: u64,
        /// Address space available for them.
        available: u64,
        /// Whether `RLIMIT_AS` is what limits it.
        limited: bool,
        /// The largest `--max-memory` that fits `--max-instances`, if any.
        fitting_memory: Option<u64>,
        /// The largest `--max-instances` that fits `--max-memory`.
        most: u64,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MapCount { max_instances, needed, rest, max_map_count, most } => write!(
                f,
                "--max-instances {max_instances} needs about {needed} memory mappings \
                 ({MAPPINGS_PER_STACK} per fiber stack and {MAPPINGS_PER_MEMORY} per memory slot of each \
                 instance, plus {rest} for the rest of the process) but the kernel allows \
                 {max_map_count} (vm.max_map_count): lower --max-instances to at most {most}, or \
                 raise the limit with `sysctl -w vm.max_map_count={needed}`"
            ),
            Self::AddressSpace {
                max_instances,
                max_memory,
                slots,
                needed,
                available,
                limited,
                fitting_memory,
                most,
            } => {
                write!(
                    f,
                    "--max-instances {max_instances} with --max-memory {} needs {} of address space \
                     ({slots} memory slots of {} plus a {} guard each) but only {} is free",
                    Bytes(max_memory),
                    Bytes(needed),
                    Bytes(max_memory),
                    Bytes(MEMORY_GUARD),
                    Bytes(available)
                )?;
                if limited {
                    f.write_str(" under the address-space limit (RLIMIT_AS)")?;
                }
                f.write_str(": lower --max-memory")?;
                if let Some(m) = fitting_memory {
                    write!(f, " to at most {}", Bytes(m))?;
                }
                write!(f, ", or lower --max-instances to at most {most}")?;
                if limited {
                    f.write_str(", or raise the limit (`ulimit -v`)")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PoolError {}

/// Sizes the pool for `limits` on `machine`.
///
/// Fiber stacks and component instances: one per instance slot. Memory slots:
/// [`MEMORIES_PER_INSTANCE`] per instance slot as far as `vm.max_map_count` allows, at least
/// one. The reservation per memory slot: [`FULL_RESERVATION`] (or `--max-memory` if larger)
/// when all slots fit in the address space, with fewer spare memory slots if that is what it
/// takes; otherwise `--max-memory`.
///
/// # Errors
///
/// [`PoolError::MapCount`] when even one memory slot per instance exceeds `vm.max_map_count`,
/// [`PoolError::AddressSpace`] when one slot of `--max-memory` per instance does not fit.
pub fn plan(limits: &RuntimeLimits, machine: &Machine) -> Result<PoolPlan, PoolError> {
    let instances = limits.max_instances.saturating_add(PROBE_SLOTS);
    let n = u64::from(instances);
    let max_memory = limits.max_memory.max(1).div_ceil(WASM_PAGE).saturating_mul(WASM_PAGE);

    // Mappings: stacks from the start, memory slots as they are used; the rest of the process.
    let rest = machine.mappings + MAPPING_HEADROOM;
    let stack_mappings = MAPPINGS_PER_STACK * n;
    let memory_cap = match machine.max_map_count {
        Some(max) => max.saturating_sub(rest + stack_mappings) / MAPPINGS_PER_MEMORY,
        None => u64::MAX,
    };
    if memory_cap < n {
        let max_map_count = machine.max_map_count.unwrap_or(0);
        let per_instance = MAPPINGS_PER_STACK + MAPPINGS_PER_MEMORY;
        return Err(PoolError::MapCount {
            max_instances: limits.max_instances,
            needed: rest + per_instance * n,
            rest,
            max_map_count,
            most: (max_map_count.saturating_sub(rest) / per_instance).saturating_sub(PROBE_SLOTS.into()),
        });
    }
    let wanted = (n * MEMORIES_PER_INSTANCE).min(memory_cap);

    // Address space: the other pools first, then as many memory slots as fit.
    let other_pools = n * (STACK_SIZE + HOST_PAGE)
        + u64::from(instances.saturating_mul(TABLES_PER_INSTANCE)) * TABLE_ELEMENTS as u64 * 8;
    let mut available = machine.largest_gap;
    if let Some(left) = machine.address_limit_left {
        available = available.min(left);
    }
    let available = available.saturating_sub(other_pools + ADDRESS_HEADROOM);
    let limited = machine.address_limit_left.is_some_and(|left| left < machine.largest_gap);
    let fitting = |reservation: u64| available.saturating_sub(MEMORY_GUARD) / (reservation + MEMORY_GUARD);
    let full = FULL_RESERVATION.max(max_memory);
    let (reservation, memories) = if fitting(full) >= n {
        (full, wanted.min(fitting(full)))
    } else if fitting(max_memory) >= n {
        (max_memory, wanted.min(fitting(max_memory)))
    } else {
        let per_slot = available.saturating_sub(MEMORY_GUARD) / n;
        let fitting_memory = per_slot.saturating_sub(MEMORY_GUARD) / WASM_PAGE * WASM_PAGE;
        return Err(PoolError::AddressSpace {
            max_instances: limits.max_instances,
            max_memory,
            slots: n,
            needed: slab_bytes(n, max_memory),
            available,
            limited,
            fitting_memory: (fitting_memory > 0).then_some(fitting_memory),
            most: fitting(max_memory).saturating_sub(PROBE_SLOTS.into()),
        });
    };
    let memories = u32::try_from(memories).unwrap_or(u32::MAX);
    Ok(PoolPlan {
        instances,
        stacks: instances,
        memories,
        tables: instances.saturating_mul(TABLES_PER_INSTANCE),
        core_instances: instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE),
        reservation,
        max_memory,
        mappings: rest + stack_mappings + MAPPINGS_PER_MEMORY * u64::from(memories),
    })
}

/// Address space of `slots` memory slots reserving `reservation` each, with their guards.
fn slab_bytes(slots: u64, reservation: u64) -> u64 {
    slots.saturating_mul(reservation + MEMORY_GUARD).saturating_add(MEMORY_GUARD)
}

/// A byte count in the largest binary unit that keeps it readable (`4 GiB`, `64 MiB`).
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (size, unit) in units {
            if self.0 >= size {
                let whole = self.0 / size;
                let tenth = (self.0 % size) * 10 / size;
                return if tenth == 0 {
                    write!(f, "{whole} {unit}")
                } else {
                    write!(f, "{whole}.{tenth} {unit}")
                };
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIB: u64 = 1 << 40;

    /// A machine like the development one: default vm.max_map_count, 85 TiB below the binary.
    fn machine() -> Machine {
        Machine {
            max_map_count: Some(65_530),
            mappings: 100,
            largest_gap: 85 * TIB,
            address_limit_left: None,
        }
    }

    fn limits(max_instances: u32, max_memory: u64) -> RuntimeLimits {
        RuntimeLimits { max_instances, max_memory, ..RuntimeLimits::default() }
    }

    #[test]
    fn default_limits_get_two_memories_per_instance_and_the_full_reservation() {
        let p = plan(&RuntimeLimits::default(), &machine()).unwrap();
        assert_eq!((p.instances, p.stacks, p.memories), (1_001, 1_001, 2_002));
        assert_eq!((p.tables, p.core_instances), (3_003, 4_004));
        assert_eq!(p.reservation, FULL_RESERVATION);
        assert!(p.full_reservation());
        assert_eq!(p.max_memory, 64 << 20);
    }

    #[test]
    fn sixteen_thousand_instances_fit_the_default_max_map_count() {
        let p = plan(&limits(16_000, 64 << 20), &machine()).unwrap();
        assert!(p.memories >= 16_001, "{p:?}");
        assert!(p.mappings <= 65_530, "{p:?}");
        assert!(p.full_reservation(), "16,001 slots of 4 GiB fit in 85 TiB: {p:?}");
    }

    #[test]
    fn memory_slots_are_capped_by_the_mappings_left() {
        let p = plan(&limits(12_000, 64 << 20), &machine()).unwrap();
        let rest = 100 + MAPPING_HEADROOM;
        assert_eq!(u64::from(p.memories), (65_530 - rest - 2 * 12_001) / 2);
        assert!(p.mappings <= 65_530);
    }

    #[test]
    fn too_many_instances_for_max_map_count_are_refused_with_the_sysctl_to_run() {
        let e = plan(&limits(20_000, 64 << 20), &machine()).unwrap_err();
        let PoolError::MapCount { needed, most, .. } = e else { panic!("{e:?}") };
        assert_eq!(needed, 100 + MAPPING_HEADROOM + 4 * 20_001);
        // The largest budget it suggests does fit.
        plan(&limits(u32::try_from(most).unwrap(), 64 << 20), &machine()).unwrap();
        plan(&limits(u32::try_from(most).unwrap() + 1, 64 << 20), &machine()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--max-instances 20000"), "{text}");
        assert!(text.contains(&format!("lower --max-instances to at most {most}")), "{text}");
        assert!(text.contains(&format!("sysctl -w vm.max_map_count={needed}")), "{text}");
        // With that limit, it starts.
        let raised = Machine { max_map_count: Some(needed), ..machine() };
        plan(&limits(20_000, 64 << 20), &raised).unwrap();
    }

    #[test]
    fn an_unknown_max_map_count_is_not_checked() {
        let m = Machine { max_map_count: None, ..machine() };
        let p = plan(&limits(5_000, 64 << 20), &m).unwrap();
        assert_eq!(p.memories, 10_002);
    }

    #[test]
    fn the_full_reservation_is_kept_with_fewer_spare_memories_when_that_fits() {
        // 10,700 instances: 21,402 slots of 4 GiB would need 86 TiB; about 20,000 fit in 80.
        let m = Machine { largest_gap: 80 * TIB, ..machine() };
        let p = plan(&limits(10_700, 64 << 20), &m).unwrap();
        assert!(p.full_reservation(), "{p:?}");
        assert!(p.memories >= 10_701 && p.memories < 21_402, "{p:?}");
        assert!(p.memory_bytes() <= 80 * TIB, "{p:?}");
    }

    #[test]
    fn the_reservation_shrinks_to_max_memory_when_4_gib_slots_do_not_fit() {
        let raised = Machine { max_map_count: Some(1 << 20), ..machine() };
        let p = plan(&limits(50_000, 64 << 20), &raised).unwrap();
        assert!(!p.full_reservation());
        assert_eq!(p.reservation, 64 << 20);
        assert_eq!(p.memories, 100_002);
    }

    #[test]
    fn max_memory_above_4_gib_reserves_max_memory() {
        let p = plan(&limits(10, 8 << 30), &machine()).unwrap();
        assert_eq!(p.reservation, 8 << 30);
    }

    #[test]
    fn max_memory_is_rounded_up_to_wasm_pages() {
        let p = plan(&limits(10, 100_000), &machine()).unwrap();
        assert_eq!(p.max_memory, 2 * WASM_PAGE);
    }

    #[test]
    fn memory_that_cannot_fit_is_refused_naming_both_options() {
        let e = plan(&limits(200, 1 << 40), &machine()).unwrap_err();
        let PoolError::AddressSpace { most, fitting_memory, limited, .. } = e else { panic!("{e:?}") };
        assert!(!limited);
        let text = e.to_string();
        assert!(text.contains("--max-instances 200 with --max-memory 1 TiB"), "{text}");
        assert!(text.contains(&format!("lower --max-instances to at most {most}")), "{text}");
        assert!(text.contains("lower --max-memory to at most "), "{text}");
        // Both suggestions fit.
        plan(&limits(u32::try_from(most).unwrap(), 1 << 40), &machine()).unwrap();
        plan(&limits(200, fitting_memory.unwrap()), &machine()).unwrap();
    }

    #[test]
    fn rlimit_as_is_respected_and_named() {
        let m = Machine { address_limit_left: Some(200 << 30), ..machine() };
        // 1,001 stacks (2 GiB) + tables + headroom leave ~133 GiB: 4 GiB slots do not fit
        // 1,001 times, so slots shrink to --max-memory.
        let p = plan(&RuntimeLimits::default(), &m).unwrap();
        assert_eq!(p.reservation, 64 << 20);
        let e = plan(&limits(1_000, 1 << 30), &m).unwrap_err();
        assert!(e.to_string().contains("RLIMIT_AS") && e.to_string().contains("ulimit -v"), "{e}");
    }

    #[test]
    fn maps_are_scanned_for_count_and_largest_gap() {
        let maps = "00400000-00500000 r-xp 00000000 08:01 1 /bin/x\n\
                    10000000-10001000 rw-p 00000000 00:00 0 [heap]\n\
                    7fff00000000-7fff00100000 rw-p 00000000 00:00 0 [stack]\n\
                    ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n";
        let (count, gap, mapped) = scan_maps(maps);
        assert_eq!(count, 4);
        assert_eq!(gap, 0x7fff00000000 - 0x10001000);
        assert_eq!(mapped, 0x100000 + 0x1000 + 0x100000 + 0x1000);
    }

    #[test]
    fn address_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(address_limit(limits), None);
        let limits = "Max address space         8589934592           unlimited            bytes     \n";
        assert_eq!(address_limit(limits), Some(8 << 30));
    }

    #[test]
    fn probing_this_process_finds_mappings_and_address_space() {
        let m = Machine::probe();
        assert!(m.mappings > 0);
        assert!(m.largest_gap > 1 << 40, "{m:?}");
    }

    /// A pool with fewer memory slots than permits (as a component with two memories per
    /// instance would see): the instance that finds the pool empty fails as
    /// `GuestError::Instantiate`, which `conn/failure.rs` answers 503 with Retry-After, not as
    /// a trap (500).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_exhausted_pool_fails_instantiation_not_the_call() {
        use crate::config::CompileCache;
        use crate::runtime::{GuestError, Runtime};
        let limits = RuntimeLimits { route_max_instances: Some(2), ..limits(2, 64 << 20) };
        let mut p = plan(&limits, &Machine::probe()).unwrap();
        p.memories = 1; // the load probe has returned its slot; one request takes it
        let cache = CompileCache::Dir(std::env::temp_dir().join("wasm-host-unit-test-cache"));
        let runtime = Runtime::with_plan(&limits, &cache, &p).unwrap();
        let path = std::path::Path::new(test_artifacts::EXAMPLE_HELLO_WORLD);
        let (handler, _) = runtime.load(path, &std::fs::read(path).unwrap()).unwrap();
        let route: std::sync::Arc<str> = "GET /hello-world".into();
        let first = runtime.instantiate(&handler, &route).await.expect("one memory slot is free");
        match runtime.instantiate(&handler, &route).await {
            Err(GuestError::Instantiate(reason)) => assert!(reason.contains("memor"), "{reason}"),
            Err(e) => panic!("expected an instantiation failure, got {e}"),
            Ok(_) => panic!("the pool has no memory slot left"),
        }
        drop(first);
        // The slot is back: the next request is served.
        assert!(runtime.instantiate(&handler, &route).await.is_ok());
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(Bytes(4 << 30).to_string(), "4 GiB");
        assert_eq!(Bytes(64 << 20).to_string(), "64 MiB");
        assert_eq!(Bytes((3 << 40) / 2).to_string(), "1.5 TiB");
        assert_eq!(Bytes(100).to_string(), "100 bytes");
    }
}
