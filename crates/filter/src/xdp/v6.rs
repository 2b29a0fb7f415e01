//! The IPv6 source tables: per-length hashes, the Bloom filter over the /32s of prefixes of
//! /32 and longer, and per /32 slot the mask of the lengths under it, so a matching source
//! tries only the lengths its /32 has (one hash lookup, typically) instead of every length in
//! use longest first.

use std::collections::BTreeSet;

use foldhash::HashMap;
use ipnet::IpNet;

use super::XdpFilter;
use crate::layout::{self, PREFIX_KEY_SIZE};
use crate::plan::FilterPlan;
use crate::xdp::ids::{RuleKey, SlotIds};
use crate::xdp::maps::update_all;
use crate::xdp::{ReconcileReport, XdpError};

impl XdpFilter {
    /// The IPv6 source tables from `plan`: lengths widened to old and new while entries
    /// change; the Bloom filter and the length masks gain bits before entries are added and
    /// lose them after they are deleted (a lookup never misses an entry that is there).
    pub(super) fn write_v6(
        &mut self,
        plan: &FilterPlan,
        report: &mut ReconcileReport,
    ) -> Result<(), XdpError> {
        let slot = |ids: &SlotIds<RuleKey>, key: RuleKey| ids.get(&key).unwrap_or(0);
        let mut v6: [HashMap<[u8; PREFIX_KEY_SIZE], u32>; 2] = Default::default();
        let mut v6_lengths: [BTreeSet<u8>; 2] = Default::default();
        let mut filter = vec![0u64; layout::V6_FILTER_WORDS];
        let mut masks = vec![0u64; 2 * layout::V6_MASK_SLOTS];
        for p in &plan.v6 {
            let set = usize::from(p.source.prefix_len() >= layout::V6_LONG_FROM);
            v6[set].insert(
                layout::prefix_key(p.source),
                slot(&self.rule_ids, RuleKey::Decision(p.rule.decision)),
            );
            v6_lengths[set].insert(p.source.prefix_len());
            if let (1, IpNet::V6(n)) = (set, p.source) {
                let top32 = (u128::from(n.network()) >> 96) as u32;
                let bit = layout::v6_filter_bit(top32) as usize;
                filter[bit / 64] |= 1 << (bit % 64);
                let (word, bit) = layout::v6_mask_bit(top32, n.prefix_len());
                masks[word] |= 1 << bit;
            }
        }
        let union = |held: &Option<Vec<u64>>, new: &[u64]| -> Vec<u64> {
            match held {
                Some(h) => h.iter().zip(new).map(|(a, b)| a | b).collect(),
                None => vec![u64::MAX; new.len()],
            }
        };
        let held_filter = self.written.src.v6_filter.take();
        let held_masks = self.written.src.v6_masks.take();
        let (filter_union, masks_union) = (union(&held_filter, &filter), union(&held_masks, &masks));
        // Masks before the filter: a source the filter lets through finds its lengths.
        report.elements_written +=
            self.write_words("v6_len_masks", 2, held_masks.as_deref(), &masks_union)?;
        report.elements_written += self.write_words("v6_filter", 1, held_filter.as_deref(), &filter_union)?;
        for set in 0..2 {
            let wanted = std::mem::take(&mut v6_lengths[set]);
            report.elements_written +=
                self.sync_hash("v6_prefixes", "v6_lengths", set as u32, &v6[set], wanted, |w| {
                    (&mut w.src.v6[set], &mut w.src.v6_lengths[set])
                })?;
        }
        report.elements_written += self.write_words("v6_filter", 1, Some(&filter_union), &filter)?;
        report.elements_written += self.write_words("v6_len_masks", 2, Some(&masks_union), &masks)?;
        self.written.src.v6_filter = Some(filter);
        self.written.src.v6_masks = Some(masks);
        Ok(())
    }

    /// Writes the elements of array `map` (`per` words each) that differ from `held` (all
    /// when unknown).
    fn write_words(
        &self,
        map: &str,
        per: usize,
        held: Option<&[u64]>,
        words: &[u64],
    ) -> Result<usize, XdpError> {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = words
            .chunks(per)
            .enumerate()
            .filter(|(i, w)| held.is_none_or(|h| h.get(i * per..(i + 1) * per) != Some(*w)))
            .map(|(i, w)| {
                ((i as u32).to_ne_bytes().to_vec(), w.iter().flat_map(|x| x.to_ne_bytes()).collect())
            })
            .collect();
        update_all(&self.map_named(map)?, &entries)
    }
}
