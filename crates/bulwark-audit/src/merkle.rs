//! RFC 9162 Merkle tree: hashing, roots, inclusion and consistency proofs, and an append-only
//! compact range that tracks the root in O(log n) state.

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
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The Merkle Tree Hash of `leaves` (leaf hashes).
#[must_use]
pub fn root(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for l in leaves {
        range.push(*l);
    }
    range.root()
}

/// MTH of a non-empty slice, by recursion on the RFC's split (depth ≤ 64).
fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let (l, r) = leaves.split_at(split(leaves.len()));
            node_hash(&mth(l), &mth(r))
        }
    }
}

fn to_usize(n: u64) -> Result<usize, ProofError> {
    usize::try_from(n).map_err(|_| ProofError::BeyondTree {
        size: n,
        available: 0,
    })
}

/// The inclusion proof (`PATH`, RFC 9162 §2.1.3.1) of leaf `index` in the tree of the first
/// `size` of `leaves`.
///
/// # Errors
/// When `index ≥ size` or `size` exceeds the leaves given.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let tree = leaves
        .get(..to_usize(size)?)
        .ok_or(ProofError::BeyondTree {
            size,
            available: leaves.len() as u64,
        })?;
    let mut out = Vec::new();
    path(to_usize(index)?, tree, &mut out);
    Ok(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    if d.len() <= 1 {
        return;
    }
    let k = split(d.len());
    let (l, r) = d.split_at(k);
    if m < k {
        path(m, l, out);
        out.push(mth(r));
    } else {
        path(m - k, r, out);
        out.push(mth(l));
    }
}

/// The consistency proof (`PROOF`, RFC 9162 §2.1.4.1) between the trees of the first `first`
/// and first `second` of `leaves`.
///
/// # Errors
/// When `first > second` or `second` exceeds the leaves given.
pub fn consistency_proof(
    leaves: &[Hash],
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProofError> {
    if first > second {
        return Err(ProofError::SizesReversed { first, second });
    }
    if first == 0 {
        return Err(ProofError::EmptyTree);
    }
    let tree = leaves
        .get(..to_usize(second)?)
        .ok_or(ProofError::BeyondTree {
            size: second,
            available: leaves.len() as u64,
        })?;
    let mut out = Vec::new();
    if first < second {
        subproof(to_usize(first)?, tree, true, &mut out);
    }
    Ok(out)
}

fn subproof(m: usize, d: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !whole {
            out.push(mth(d));
        }
        return;
    }
    let k = split(n);
    let (l, r) = d.split_at(k);
    if m <= k {
        subproof(m, l, whole, out);
        out.push(mth(r));
    } else {
        subproof(m - k, r, false, out);
        out.push(mth(l));
    }
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
    fn a_hundred_thousand_leaves_hash_quickly() {
        let all = leaves(100_000);
        let t = std::time::Instant::now();
        let r = root(&all);
        assert_eq!(r, mth(&all));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
