//! weir-scoreboard: the scoreboard. One anonymous shared mapping, made by the supervisor before
//! it forks: server-wide [`Counters`], then a [`Slot`] per possible worker (`ServerLimit`). Each
//! worker writes its own slot, the pool master reads them to manage the pool, and the edge reads
//! everything for server-status (so it answers even when every worker is busy). Every field is an
//! atomic: no process ever takes a lock another could die holding.
//!
//! The counters and every slot each start on a page of their own, so that a worker can keep its
//! own slot and unmap everything else ([`Scoreboard::confine_to`]): code in a worker then cannot
//! read or forge another worker's slot or the edge's counters, and, the mapping being anonymous,
//! has no way to map them again. What the master and the edge read from a slot is still written
//! by a worker, so they treat it as untrusted: a worker can only misreport itself.
//!
//! Used by the supervisor, the pool master, workers and the edge. Starts no thread, forks
//! nothing.

mod counters;
pub mod memory;
mod slots;

use std::ptr::NonNull;

pub use counters::{Counters, Recycle, Reject};
pub use slots::{now_us, Slot, SlotView, State, REQUEST_LINE};

/// The page size: the counters and each slot take one page (or more), so one can be kept alone.
fn page_size() -> usize {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096);
    let need = std::mem::size_of::<Slot>().max(std::mem::size_of::<Counters>());
    let page = usize::try_from(page).unwrap_or(4096).max(4096);
    need.div_ceil(page) * page
}

/// The shared mapping.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    counters: NonNull<Counters>,
    first_slot: NonNull<Slot>,
    slots: usize,
    /// Bytes from one slot to the next (and from the counters to the first slot): whole pages.
    stride: usize,
}

// SAFETY: the mapping is never unmapped while the process runs, and every field in it is an
// atomic, so sharing the pointers between threads (the edge's) is sound.
unsafe impl Send for Scoreboard {}
// SAFETY: as above.
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// Maps a zeroed scoreboard of `slots` slots, shared with every process forked afterwards.
    /// Pages are only backed once touched, so unused slots cost address space, not memory.
    pub fn create(slots: usize) -> std::io::Result<Scoreboard> {
        let slots = slots.max(1);
        let stride = page_size();
        let offset = stride;
        let len = offset + stride * slots;
        let size = std::num::NonZeroUsize::new(len).ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: a new anonymous mapping aliases nothing; zeroed memory is a valid `Counters`
        // and valid `Slot`s (all atomics); it stays mapped for the life of the process.
        let base = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                size,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
            )
        }
        .map_err(std::io::Error::from)?;
        // SAFETY: `offset` is inside the mapping (len > offset) and page-aligned, so aligned
        // for `Slot`.
        let first_slot = unsafe { base.cast::<u8>().add(offset) }.cast::<Slot>();
        // Zeroed memory is an open slot (state 0 reads as Open, pid 0): nothing to touch.
        let scoreboard = Scoreboard { counters: base.cast(), first_slot, slots, stride };
        let counters = scoreboard.counters();
        counters.started_us.store(now_us(), std::sync::atomic::Ordering::Relaxed);
        counters.generation.store(1, std::sync::atomic::Ordering::Relaxed);
        Ok(scoreboard)
    }

    /// The server-wide figures.
    pub fn counters(&self) -> &'static Counters {
        // SAFETY: the counters live at the start of the mapping for the life of the process.
        unsafe { self.counters.as_ref() }
    }

    /// The number of slots (ServerLimit).
    pub fn len(&self) -> usize {
        self.slots
    }

    /// Whether there are no slots (never: at least one is made).
    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// Every slot, in order.
    pub fn slots(&self) -> impl Iterator<Item = &'static Slot> + '_ {
        (0..self.slots).filter_map(|index| self.slot(index))
    }

    /// One slot.
    pub fn slot(&self, index: usize) -> Option<&'static Slot> {
        if index >= self.slots {
            return None;
        }
        // SAFETY: slot `index` lies inside the mapping (index < slots), page-aligned, zeroed or
        // written only through atomics, and mapped for the life of every process but a confined
        // worker, which only ever holds its own slot (see `confine_to`).
        Some(unsafe { &*self.first_slot.as_ptr().cast::<u8>().add(self.stride * index).cast::<Slot>() })
    }

    /// Claims the first slot with no worker in it for a new worker of `generation`, forked by
    /// the pool master tagged `owner`. The claim is a compare-and-swap: during a reload two pool
    /// masters claim slots at once.
    pub fn claim_free_slot(&self, generation: u32, owner: u32) -> Option<usize> {
        let index = (0..self.slots).position(|index| self.slot(index).is_some_and(Slot::try_open_claim))?;
        self.slot(index)?.claim(generation, owner);
        Some(index)
    }

    /// In the supervisor, once the pool master tagged `owner` is reaped: frees each of its slots
    /// whose worker is gone (`worker_gone(pid)`; a pid of 0 means a fork that never finished).
    /// Returns the pids of its workers still alive: their slots are freed when they are reaped
    /// ([`Scoreboard::release_orphan`]). Only the master freed slots, so without this every
    /// worker of a lost master would keep its slot for the life of the server.
    pub fn reclaim_owner(&self, owner: u32, mut worker_gone: impl FnMut(i32) -> bool) -> Vec<i32> {
        let mut alive = Vec::new();
        for slot in self.slots().filter(|slot| slot.owner() == owner && slot.state() != State::Open) {
            let pid = slot.pid();
            if pid <= 0 || worker_gone(pid) {
                slot.release();
            } else {
                alive.push(pid);
            }
        }
        alive
    }

    /// In the supervisor: frees the slot of `pid`, a worker of a dead pool master (one whose
    /// tag `owner_dead` accepts) that the supervisor has just reaped. No live master's worker
    /// can hold that pid: it was the supervisor's child until now. Returns whether a slot was
    /// freed.
    pub fn release_orphan(&self, pid: i32, owner_dead: impl Fn(u32) -> bool) -> bool {
        let mut freed = false;
        for slot in self.slots().filter(|slot| slot.pid() == pid && owner_dead(slot.owner())) {
            slot.release();
            freed = true;
        }
        freed
    }

    /// In a new worker: unmaps the counters and every slot but `index`. Afterwards only that
    /// slot may be used (through the `&'static Slot` taken before); this `Scoreboard` and its
    /// copies must not be touched again in this process.
    pub fn confine_to(&self, index: usize) -> std::io::Result<&'static Slot> {
        let own = self.slot(index).ok_or(std::io::ErrorKind::InvalidInput)?;
        let base = self.counters.cast::<u8>();
        let stride = self.stride;
        let own_start = stride + stride * index;
        let total = stride + stride * self.slots;
        for (start, end) in [(0, own_start), (own_start + stride, total)] {
            if end > start {
                // SAFETY: the range lies inside this mapping and is page-aligned; nothing in this
                // process refers to it afterwards (the caller keeps only its own slot).
                unsafe {
                    let at = NonNull::new_unchecked(base.as_ptr().add(start)).cast();
                    nix::sys::mman::munmap(at, end - start).map_err(std::io::Error::from)?;
                }
            }
        }
        Ok(own)
    }
}
