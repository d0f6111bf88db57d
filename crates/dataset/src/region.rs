//! Rollout regions found from the compress markers, once, at load (DESIGN §5).
//!
//! Every history is cut into regions `[start, end)`: a region opens at a `START` marker and
//! closes after its `END` marker; a last region cut short by the end of collection has no `END`
//! and is kept (`closed == false`). Regions are stored flat, in history order, so region
//! `r - 1` is the previous region of region `r` whenever `r` is not its history's first.

use ccad_core::tokens::marker;
use ccad_core::{Error, Result};

use crate::history::Histories;

/// One rollout region of one history. `start`/`end` are global transition ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub history: u32,
    /// Index of the region within its history (`k` in DESIGN §5).
    pub k: u32,
    pub start: usize,
    pub end: usize,
    /// The region's last transition carries the `END` marker (a `</c>` follows it).
    pub closed: bool,
}

impl Region {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Where a transition sits: its history, its region and its step within the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Global transition id.
    pub g: usize,
    pub history: usize,
    /// Flat region number (index into [`RegionIndex::regions`]).
    pub region: usize,
    /// Step within the history.
    pub t: usize,
}

/// All regions of all histories, with O(log n) look-up from a transition to its region.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegionIndex {
    regions: Vec<Region>,
    /// `[n_histories + 1]`: first flat region of each history.
    history_regions: Vec<usize>,
    interval: usize,
}

impl RegionIndex {
    /// Cut every history into regions of at most `interval` transitions. Markers that do not
    /// form regions (no `START` first, a transition between an `END` and the next `START`, a
    /// `START` inside an open region, an unknown value, a region longer than `interval`) are a
    /// one-line error naming the task's `compress_markers`, the stream and the step.
    pub fn build(h: &Histories, interval: usize) -> Result<Self> {
        let mut regions = Vec::new();
        let mut history_regions = Vec::with_capacity(h.n_histories() + 1);
        for hist in 0..h.n_histories() {
            history_regions.push(regions.len());
            let range = h.range(hist);
            let bad = |g: usize, msg: &str| {
                Error::file(
                    &h.path,
                    format!("{}/compress_markers", h.task[hist]),
                    format!("stream {} step {}: {msg}", h.stream[hist], g - range.start),
                )
            };
            let mut open: Option<usize> = None;
            let mut k = 0u32;
            let mut close = |start: usize, end: usize, closed: bool, regions: &mut Vec<Region>| {
                regions.push(Region {
                    history: hist as u32,
                    k,
                    start,
                    end,
                    closed,
                });
                k += 1;
            };
            for g in range.clone() {
                match (h.markers[g], open) {
                    (marker::START, None) => open = Some(g),
                    (marker::START, Some(_)) => {
                        return Err(bad(g, "region start inside an open region"));
                    }
                    (marker::NONE, Some(_)) => {}
                    (marker::END, Some(start)) => {
                        close(start, g + 1, true, &mut regions);
                        open = None;
                    }
                    (marker::NONE | marker::END, None) => {
                        return Err(bad(
                            g,
                            "transition outside a region (expected a start marker)",
                        ));
                    }
                    (m, _) => return Err(bad(g, &format!("unknown marker {m}"))),
                }
                if let Some(start) = open
                    && g + 1 - start > interval
                {
                    return Err(bad(
                        g,
                        &format!("region longer than compress_interval {interval}"),
                    ));
                }
            }
            if let Some(start) = open {
                close(start, range.end, false, &mut regions);
            }
        }
        history_regions.push(regions.len());
        Ok(Self {
            regions,
            history_regions,
            interval,
        })
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Flat region numbers of history `h`.
    pub fn history_regions(&self, h: usize) -> std::ops::Range<usize> {
        self.history_regions[h]..self.history_regions[h + 1]
    }

    /// The longest a region may be (`compress_interval`).
    pub fn interval(&self) -> usize {
        self.interval
    }

    /// The region before region `r` in the same history, if any.
    pub fn previous(&self, r: usize) -> Option<&Region> {
        (self.regions[r].k > 0).then(|| &self.regions[r - 1])
    }

    /// Locate global transition `g`: binary search over the history offsets (prefix sums of
    /// history lengths), then over that history's region starts (prefix sums of region
    /// lengths). Two short searches instead of one over all regions, so that the searched
    /// arrays stay small enough for the cache (7 300 offsets, ≤ 13 regions at paper scale).
    pub fn locate(&self, g: usize, h: &Histories) -> Location {
        debug_assert!(
            g < h.n_transitions(),
            "transition {g} beyond the last history"
        );
        let history = h.offsets.partition_point(|&o| o <= g) - 1;
        let rs = self.history_regions(history);
        let region = rs.start + self.regions[rs].partition_point(|r| r.start <= g) - 1;
        debug_assert!(g < self.regions[region].end);
        Location {
            g,
            history,
            region,
            t: g - h.offsets[history],
        }
    }
}
