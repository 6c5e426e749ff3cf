//! RFC 9162 Merkle tree: hashing, roots, inclusion and consistency proofs, and an append-only
//! compact range that tracks the root in O(log n) state.

use std::ops::Range;

use aws_lc_rs::digest::{Context, SHA256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Why a proof was rejected or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The first tree is larger than the second.
    #[error("tree size {first} is larger than tree size {second}")]
    SizesReversed {
        /// The first size.
        first: u64,
        /// The second size.
        second: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    /// The recomputed root does not match the expected one.
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    /// Consistency with the empty tree proves nothing and is refused.
    #[error("a consistency proof from the empty tree is meaningless")]
    EmptyTree,
    /// More leaves were asked for than exist.
    #[error("tree size {size} is beyond the {available} leaves available")]
    BeyondTree {
        /// The size asked for.
        size: u64,
        /// The leaves available.
        available: u64,
    },
}

/// `SHA-256(0x00 ‖ data)`.
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0x00]);
    c.update(data);
    finish(c)
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0x01]);
    c.update(left);
    c.update(right);
    finish(c)
}

fn finish(c: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// The hash of the empty tree, `SHA-256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The Merkle Tree Hash of `leaves` (leaf hashes), in O(n) hashes and O(log n) memory.
#[must_use]
pub fn root(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for l in leaves {
        range.push(*l);
    }
    range.root()
}

/// Recomputes the tree of the leaf data `leaves` and checks it has root `expected`; returns the
/// number of leaves. One pass, O(log n) memory: the offline verifier's inner loop.
///
/// # Errors
/// `RootMismatch` when the leaves do not hash to `expected`.
pub fn verify_log<I>(leaves: I, expected: &Hash) -> Result<u64, ProofError>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut range = CompactRange::new();
    for data in leaves {
        range.push(leaf_hash(data.as_ref()));
    }
    if &range.root() == expected {
        Ok(range.size())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// MTH of a slice, by recursion on the RFC's split (depth ≤ 64).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = usize::try_from(split(leaves.len() as u64)).unwrap_or(usize::MAX);
            let (l, r) = leaves.split_at(k.min(leaves.len()));
            node_hash(&mth(l), &mth(r))
        }
    }
}

/// The subtrees, as leaf ranges `start..end`, whose Merkle Tree Hashes form the inclusion proof
/// (`PATH`, RFC 9162 §2.1.3.1) of leaf `index` in the tree of `size`, in proof order (bottom
/// up). There are at most 64; a store that keeps subtree hashes answers a proof with that many
/// lookups instead of rehashing the tree.
///
/// # Errors
/// When `index ≥ size`.
pub fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut start, mut end) = (0u64, size);
    let mut out = Vec::new();
    // Top down; PATH lists the siblings bottom up.
    while end - start > 1 {
        let mid = start + split(end - start);
        if index < mid {
            out.push(mid..end);
            end = mid;
        } else {
            out.push(start..mid);
            start = mid;
        }
    }
    out.reverse();
    Ok(out)
}

/// The subtrees, as leaf ranges, whose Merkle Tree Hashes form the consistency proof (`PROOF`,
/// RFC 9162 §2.1.4.1) between the trees of `first` and `second` leaves, in proof order. Empty
/// when the sizes are equal.
///
/// # Errors
/// When `first > second`, or `first` is 0 (a proof from the empty tree proves nothing).
pub fn consistency_ranges(first: u64, second: u64) -> Result<Vec<Range<u64>>, ProofError> {
    if first > second {
        return Err(ProofError::SizesReversed { first, second });
    }
    if first == 0 {
        return Err(ProofError::EmptyTree);
    }
    let mut out = Vec::new();
    if first == second {
        return Ok(out);
    }
    // SUBPROOF(m, D[start:end], whole), unrolled; `m` counts leaves from `start`.
    let (mut start, mut end, mut m, mut whole) = (0u64, second, first, true);
    loop {
        let n = end - start;
        if m == n {
            if !whole {
                out.push(start..end);
            }
            break;
        }
        let mid = start + split(n);
        if m <= mid - start {
            out.push(mid..end);
            end = mid;
        } else {
            out.push(start..mid);
            m -= mid - start;
            start = mid;
            whole = false;
        }
    }
    out.reverse();
    Ok(out)
}

/// The leaves `range` of `leaves`, or `BeyondTree`.
fn slice(leaves: &[Hash], range: Range<u64>) -> Result<&[Hash], ProofError> {
    let beyond = ProofError::BeyondTree {
        size: range.end,
        available: leaves.len() as u64,
    };
    let start = usize::try_from(range.start).map_err(|_| beyond.clone())?;
    let end = usize::try_from(range.end).map_err(|_| beyond.clone())?;
    leaves.get(start..end).ok_or(beyond)
}

/// The inclusion proof (`PATH`, RFC 9162 §2.1.3.1) of leaf `index` in the tree of the first
/// `size` of `leaves`. Hashes every leaf once; see [`inclusion_ranges`] for O(log n) lookups.
///
/// # Errors
/// When `index ≥ size` or `size` exceeds the leaves given.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    let ranges = inclusion_ranges(index, size)?;
    slice(leaves, 0..size)?;
    ranges
        .into_iter()
        .map(|r| slice(leaves, r).map(mth))
        .collect()
}

/// The consistency proof (`PROOF`, RFC 9162 §2.1.4.1) between the trees of the first `first`
/// and first `second` of `leaves`. See [`consistency_ranges`] for O(log n) lookups.
///
/// # Errors
/// When `first > second`, `first` is 0, or `second` exceeds the leaves given.
pub fn consistency_proof(
    leaves: &[Hash],
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProofError> {
    let ranges = consistency_ranges(first, second)?;
    slice(leaves, 0..second)?;
    ranges
        .into_iter()
        .map(|r| slice(leaves, r).map(mth))
        .collect()
}

/// Verifies that `leaf` is at `index` in the tree of `size` with `root` (RFC 9162 §2.1.3.2).
///
/// # Errors
/// `IndexOutOfRange`, `WrongLength` or `RootMismatch`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Verifies that the tree of `first` leaves with `first_root` is a prefix of the tree of `second`
/// leaves with `second_root` (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and equal
/// roots; a proof from the empty tree is refused (RFC 9162 defines `PROOF(m, D[n])` for
/// `0 < m`, and such a "proof" would prove nothing).
///
/// # Errors
/// `SizesReversed`, `WrongLength` or `RootMismatch`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::SizesReversed { first, second });
    }
    if first == 0 {
        return Err(ProofError::EmptyTree);
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (first_hash, rest) = path.split_first().ok_or(ProofError::WrongLength)?;
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first_hash, *first_hash);
    for c in rest {
        if sn == 0 {
            return Err(ProofError::WrongLength);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr == first_root && &sr == second_root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The right edge of an append-only tree: the roots of its maximal perfect subtrees, left to
/// right. Appending is amortised O(1) hashes and the state is O(log n), so a log keeps this in
/// memory (or in a head row) instead of rehashing every leaf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// `(height, hash)` of each perfect subtree; heights strictly decrease left to right.
    peaks: Vec<(u32, Hash)>,
}

impl CompactRange {
    /// The empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(h, left)) = self.peaks.last() {
            if h != node.0 {
                break;
            }
            self.peaks.pop();
            node = (h + 1, node_hash(&left, &node.1));
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// Storable form: size (8 bytes, big-endian), then per peak its height (1 byte) and hash.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.peaks.len() * 33);
        out.extend_from_slice(&self.size.to_be_bytes());
        for (h, hash) in &self.peaks {
            out.push(u8::try_from(*h).unwrap_or(u8::MAX));
            out.extend_from_slice(hash);
        }
        out
    }

    /// Reads [`CompactRange::to_bytes`]; `None` unless the peaks are exactly those a tree of the
    /// stated size has.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (size, rest) = bytes.split_first_chunk::<8>()?;
        let size = u64::from_be_bytes(*size);
        if rest.len() % 33 != 0 {
            return None;
        }
        let peaks: Vec<(u32, Hash)> = rest
            .chunks_exact(33)
            .map(|c| {
                let (h, hash) = c.split_first()?;
                Some((u32::from(*h), <Hash>::try_from(hash).ok()?))
            })
            .collect::<Option<_>>()?;
        // The peaks of a tree of `size` leaves are its set bits, highest first.
        let expected: Vec<u32> = (0..64u32).rev().filter(|b| size >> b & 1 == 1).collect();
        let heights: Vec<u32> = peaks.iter().map(|(h, _)| *h).collect();
        (heights == expected).then_some(Self { size, peaks })
    }

    /// The current Merkle Tree Hash.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(&(_, mut acc)) = it.next() else {
            return empty_root();
        };
        for (_, left) in it {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn compact_range_root_equals_the_recursive_definition() {
        let all = leaves(300);
        let mut range = CompactRange::new();
        assert_eq!(range.root(), empty_root());
        for n in 1..=all.len() {
            range.push(all[n - 1]);
            assert_eq!(range.root(), mth(&all[..n]), "size {n}");
        }
    }

    #[test]
    fn compact_ranges_round_trip_through_bytes_and_refuse_inconsistent_ones() {
        let mut range = CompactRange::new();
        for (i, leaf) in leaves(37).into_iter().enumerate() {
            let back = CompactRange::from_bytes(&range.to_bytes()).unwrap();
            assert_eq!(back, range, "size {i}");
            range.push(leaf);
        }
        let bytes = range.to_bytes();
        assert!(CompactRange::from_bytes(&bytes[..bytes.len() - 1]).is_none());
        let mut wrong_size = bytes.clone();
        wrong_size[7] ^= 1;
        assert!(CompactRange::from_bytes(&wrong_size).is_none());
        assert!(CompactRange::from_bytes(&[]).is_none());
    }

    #[test]
    fn every_generated_proof_verifies_and_tampering_fails() {
        let all = leaves(70);
        for size in 1..=all.len() as u64 {
            let r = root(&all[..size as usize]);
            for index in 0..size {
                let proof = inclusion_proof(&all, index, size).unwrap();
                let leaf = all[index as usize];
                assert_eq!(
                    verify_inclusion(&leaf, index, size, &proof, &r),
                    Ok(()),
                    "{index}/{size}"
                );
                if size > 1 {
                    assert!(verify_inclusion(&leaf, (index + 1) % size, size, &proof, &r).is_err());
                }
                let mut bad = proof.clone();
                if let Some(h) = bad.first_mut() {
                    h[0] ^= 1;
                    assert!(verify_inclusion(&leaf, index, size, &bad, &r).is_err());
                }
                let mut longer = proof.clone();
                longer.push([7; 32]);
                assert!(verify_inclusion(&leaf, index, size, &longer, &r).is_err());
            }
            assert_eq!(consistency_proof(&all, 0, size), Err(ProofError::EmptyTree));
            for first in 1..=size {
                let r1 = root(&all[..first as usize]);
                let proof = consistency_proof(&all, first, size).unwrap();
                assert_eq!(
                    verify_consistency(first, size, &r1, &r, &proof),
                    Ok(()),
                    "{first}->{size}"
                );
                if first > 0 && first < size {
                    let mut bad = proof.clone();
                    bad[0][31] ^= 0x80;
                    assert!(verify_consistency(first, size, &r1, &r, &bad).is_err());
                    let other = leaf_hash(b"forged");
                    assert!(verify_consistency(first, size, &other, &r, &proof).is_err());
                    assert!(verify_consistency(first, size, &r1, &other, &proof).is_err());
                    assert!(verify_consistency(first, size, &r1, &r, &proof[1..]).is_err());
                }
            }
        }
    }

    #[test]
    fn out_of_range_requests_are_errors_not_panics() {
        let all = leaves(4);
        assert!(inclusion_proof(&all, 4, 4).is_err());
        assert!(inclusion_proof(&all, 0, 5).is_err());
        assert!(consistency_proof(&all, 3, 2).is_err());
        assert!(consistency_proof(&all, 1, 9).is_err());
        assert!(verify_inclusion(&all[0], 0, 0, &[], &empty_root()).is_err());
        assert!(verify_consistency(3, 2, &[0; 32], &[0; 32], &[]).is_err());
        assert!(
            verify_inclusion(&all[0], u64::MAX - 1, u64::MAX, &[[0; 32]; 70], &[0; 32]).is_err()
        );
    }

    #[test]
    fn verify_log_recomputes_a_hundred_thousand_leaves() {
        let data: Vec<[u8; 8]> = (0..100_000u64).map(u64::to_be_bytes).collect();
        let expected = root(&leaves(100_000));
        assert_eq!(verify_log(&data, &expected), Ok(100_000));
        let mut edited = data.clone();
        edited[54_321][7] ^= 1;
        assert_eq!(
            verify_log(&edited, &expected),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_log(&data[..99_999], &expected),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(verify_log(Vec::<Vec<u8>>::new(), &empty_root()), Ok(0));
    }

    #[test]
    fn proof_ranges_are_at_most_64_subtrees_even_for_huge_trees() {
        let ranges = inclusion_ranges(u64::MAX - 2, u64::MAX).unwrap();
        assert!(ranges.len() <= 64);
        let ranges = consistency_ranges(u64::MAX / 3, u64::MAX).unwrap();
        assert!(ranges.len() <= 65);
        assert!(ranges.iter().all(|r| r.start < r.end));
        assert_eq!(consistency_ranges(5, 5), Ok(vec![]));
        assert_eq!(inclusion_ranges(0, 1), Ok(vec![]));
    }

    #[test]
    fn compact_root_equals_recursive_root_for_a_hundred_thousand_leaves() {
        let all = leaves(100_000);
        let r = root(&all);
        assert_eq!(r, mth(&all));
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;
        use super::leaves;

        /// Which side each proof hash joins on: the whole of what a verifier computes.
        fn inclusion_shape(i: u64, n: u64) -> Vec<bool> {
            inclusion_ranges(i, n)
                .unwrap()
                .iter()
                .map(|r| r.end <= i)
                .collect()
        }

        fn consistency_shape(m: u64, n: u64) -> Option<(bool, Vec<bool>)> {
            let ranges = consistency_ranges(m, n).ok()?;
            Some((
                m.is_power_of_two(),
                ranges.iter().map(|r| r.end <= m).collect(),
            ))
        }

        /// A tree size in 1..=300 and an index, a first size and a bit inside it.
        fn case() -> impl Strategy<Value = (u64, u64, u64, usize)> {
            (1u64..=300).prop_flat_map(|n| (Just(n), 0..n, 1..=n, 0usize..256))
        }

        proptest! {
            #[test]
            fn compact_range_equals_root_at_every_size(n in 0usize..600) {
                let all = leaves(n);
                let mut range = CompactRange::new();
                all.iter().for_each(|l| range.push(*l));
                prop_assert_eq!(range.size(), n as u64);
                prop_assert_eq!(range.root(), root(&all));
                prop_assert_eq!(range.root(), mth(&all));
            }

            #[test]
            fn inclusion_proofs_verify_and_any_change_fails((n, i, _, bit) in case()) {
                let all = leaves(n as usize);
                let r = root(&all);
                let leaf = all[i as usize];
                let proof = inclusion_proof(&all, i, n).unwrap();
                prop_assert_eq!(verify_inclusion(&leaf, i, n, &proof, &r), Ok(()));
                // Any bit of any proof hash, the leaf or the root.
                let (which, byte, mask) = (bit / 8 % (proof.len() + 2), bit / 8 % 32, 1u8 << (bit % 8));
                let (mut p, mut l, mut rr) = (proof.clone(), leaf, r);
                match which.checked_sub(2) {
                    Some(k) => p[k][byte] ^= mask,
                    None if which == 0 => l[byte] ^= mask,
                    None => rr[byte] ^= mask,
                }
                prop_assert!(verify_inclusion(&l, i, n, &p, &rr).is_err());
                // A wrong index fails. A wrong size fails unless it gives the very same hash
                // computation (e.g. leaf 0 of 3 and of 4): then it proves the same root, and the
                // signed checkpoint is what binds a root to its size.
                for j in [i + 1, i.wrapping_sub(1), i ^ 1, i ^ 2] {
                    if j != i && j < n {
                        prop_assert!(verify_inclusion(&leaf, j, n, &proof, &r).is_err());
                    }
                }
                for m in [n + 1, n - 1, n * 2, n / 2, n + 7, u64::MAX] {
                    let same = i < m && inclusion_shape(i, m) == inclusion_shape(i, n);
                    prop_assert_eq!(
                        verify_inclusion(&leaf, i, m, &proof, &r).is_ok(), same, "size {}", m
                    );
                }
                if let Some((_, shorter)) = proof.split_last() {
                    prop_assert!(verify_inclusion(&leaf, i, n, shorter, &r).is_err());
                }
            }

            #[test]
            fn consistency_proofs_verify_and_any_change_fails((n, _, m, bit) in case()) {
                let all = leaves(n as usize);
                let (r1, r2) = (root(&all[..m as usize]), root(&all));
                let proof = consistency_proof(&all, m, n).unwrap();
                prop_assert_eq!(consistency_ranges(m, n).unwrap().len(), proof.len());
                prop_assert_eq!(verify_consistency(m, n, &r1, &r2, &proof), Ok(()));
                let (which, byte, mask) = (bit / 8 % (proof.len() + 2), bit / 8 % 32, 1u8 << (bit % 8));
                let (mut p, mut a, mut b) = (proof.clone(), r1, r2);
                match which.checked_sub(2) {
                    Some(k) => p[k][byte] ^= mask,
                    None if which == 0 => a[byte] ^= mask,
                    None => b[byte] ^= mask,
                }
                prop_assert!(verify_consistency(m, n, &a, &b, &p).is_err());
                for (x, y) in [(m + 1, n), (m - 1, n), (m, n + 1), (m, n - 1), (n, m), (m, 2 * n)] {
                    if (x, y) != (m, n) {
                        let same = consistency_shape(x, y).is_some()
                            && consistency_shape(x, y) == consistency_shape(m, n);
                        prop_assert_eq!(
                            verify_consistency(x, y, &r1, &r2, &proof).is_ok(), same,
                            "{} -> {} for {} -> {}", x, y, m, n
                        );
                    }
                }
            }

            #[test]
            fn ranges_match_the_proofs((n, i, m, _) in case()) {
                let all = leaves(n as usize);
                let by_range = |r: Range<u64>| mth(&all[r.start as usize..r.end as usize]);
                let inc: Vec<Hash> = inclusion_ranges(i, n).unwrap().into_iter().map(by_range).collect();
                prop_assert_eq!(inc, inclusion_proof(&all, i, n).unwrap());
                let con: Vec<Hash> = consistency_ranges(m, n).unwrap().into_iter().map(by_range).collect();
                prop_assert_eq!(con, consistency_proof(&all, m, n).unwrap());
            }
        }
    }
}
