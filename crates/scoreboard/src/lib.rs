//! weir-scoreboard: the scoreboard. One anonymous shared mapping, made by the supervisor before
//! it forks: server-wide [`Counters`], then a [`Slot`] per possible worker (`ServerLimit`). Each
//! worker writes its own slot, the pool master reads them to manage the pool, and the edge reads
//! everything for server-status (so it answers even when every worker is busy). Every field is an
//! atomic: no process ever takes a lock another could die holding.
//!
//! Used by the supervisor, the pool master, workers and the edge. Starts no thread, forks
//! nothing.

mod counters;
pub mod memory;
mod slots;

use std::ptr::NonNull;

pub use counters::{Counters, Recycle, Reject};
pub use slots::{now_us, Slot, SlotView, State, REQUEST_LINE};

/// The shared mapping.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    counters: NonNull<Counters>,
    first_slot: NonNull<Slot>,
    slots: usize,
}

// SAFETY: the mapping is never unmapped while the process runs, and every field in it is an
// atomic, so sharing the pointers between threads (the edge's) is sound.
unsafe impl Send for Scoreboard {}
// SAFETY: as above.
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// Maps a zeroed scoreboard of `slots` slots, shared with every process forked afterwards.
    pub fn create(slots: usize) -> std::io::Result<Scoreboard> {
        let slots = slots.max(1);
        // Slots start at a multiple of their alignment after the counters.
        let align = std::mem::align_of::<Slot>();
        let offset = std::mem::size_of::<Counters>().div_ceil(align) * align;
        let len = offset + std::mem::size_of::<Slot>() * slots;
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
        // SAFETY: `offset` is inside the mapping (len > offset) and aligned for `Slot`.
        let first_slot = unsafe { base.cast::<u8>().add(offset) }.cast::<Slot>();
        let scoreboard = Scoreboard { counters: base.cast(), first_slot, slots };
        for slot in scoreboard.slots() {
            slot.release();
        }
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

    /// Every slot.
    pub fn slots(&self) -> &'static [Slot] {
        // SAFETY: `first_slot` points at `slots` initialised `Slot`s, mapped for the life of the
        // process, so a 'static borrow is sound.
        unsafe { std::slice::from_raw_parts(self.first_slot.as_ptr(), self.slots) }
    }

    /// One slot.
    pub fn slot(&self, index: usize) -> Option<&'static Slot> {
        self.slots().get(index)
    }

    /// Claims the first slot with no worker in it for a new worker of `generation`. The claim is
    /// a compare-and-swap: during a reload two pool masters claim slots at once.
    pub fn claim_free_slot(&self, generation: u32) -> Option<usize> {
        let index = self.slots().iter().position(|slot| slot.try_open_claim())?;
        self.slots()[index].claim(generation);
        Some(index)
    }
}
