//! The segment cache against a model: whatever sequence of index files is added, superseded,
//! deleted, and whatever happens to the cache files, every lookup answers what loading all
//! index files into memory would.

use super::*;
use proptest::prelude::*;
use snapguard_format::{BlobId, BlobType, Compression, IndexPack, PackBlob};

const MAC_KEY: [u8; 32] = [7; 32];
const REPO: RepoId = RepoId([9; 32]);

fn blob_id(seed: u16) -> BlobId {
    BlobId(*blake3::hash(&seed.to_le_bytes()).as_bytes())
}

/// The repository side: index files in listing order.
#[derive(Default, Clone, Debug)]
struct World {
    files: Vec<(IndexId, IndexFile)>,
    next: u32,
}

impl World {
    fn fresh_id(&mut self, tag: u8) -> [u8; 32] {
        self.next += 1;
        let mut id = *blake3::hash(&self.next.to_le_bytes()).as_bytes();
        id[31] = tag;
        id
    }

    /// Add an index file with `packs` packs holding the given blob seeds.
    fn add(&mut self, packs: &[Vec<u16>], supersede: &[usize]) {
        let supersedes = supersede
            .iter()
            .filter_map(|&i| self.files.get(i % self.files.len().max(1)).map(|f| f.0))
            .collect();
        let packs = packs
            .iter()
            .map(|seeds| {
                let id = PackId(self.fresh_id(1));
                IndexPack {
                    id,
                    size: 1000 + seeds.len() as u64,
                    epoch: 0,
                    cipher_code: 1,
                    blobs: seeds
                        .iter()
                        .enumerate()
                        .map(|(i, s)| PackBlob {
                            id: blob_id(*s),
                            kind: if s % 3 == 0 {
                                BlobType::Tree
                            } else {
                                BlobType::Data
                            },
                            offset: i as u32 * 100,
                            length: 90,
                            raw_length: u32::from(*s),
                            compression: if s % 2 == 0 {
                                Compression::Zstd
                            } else {
                                Compression::None
                            },
                        })
                        .collect(),
                }
            })
            .collect();
        let id = IndexId(self.fresh_id(2));
        self.files.push((id, IndexFile { packs, supersedes }));
    }

    fn listing(&self) -> Vec<IndexId> {
        self.files.iter().map(|f| f.0).collect()
    }

    /// Every valid location of every blob (files superseded by any listed file do not count).
    fn model(&self) -> HashMap<BlobId, Vec<BlobLocation>> {
        let superseded: HashSet<IndexId> = self
            .files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut m: HashMap<BlobId, Vec<BlobLocation>> = HashMap::new();
        for (id, f) in &self.files {
            if superseded.contains(id) {
                continue;
            }
            for p in &f.packs {
                for b in &p.blobs {
                    m.entry(b.id).or_default().push(BlobLocation {
                        pack: p.id,
                        epoch: p.epoch,
                        cipher_code: p.cipher_code,
                        blob: *b,
                    });
                }
            }
        }
        m
    }

    /// Load through the cache; returns the index and the index files that had to be read.
    fn load(&self, dir: &Path, run_records: usize) -> (Index, Vec<IndexId>) {
        let listing = self.listing();
        let mut reads = Vec::new();
        let files: HashMap<IndexId, IndexFile> = self.files.iter().cloned().collect();
        let index = load(
            dir,
            Source {
                repo: REPO,
                mac_key: &MAC_KEY,
                listing: &listing,
                read: &mut |id| {
                    reads.push(*id);
                    Ok(files.get(id).cloned())
                },
            },
            Tuning { run_records },
        )
        .expect("cache load");
        (index, reads)
    }
}

use super::super::BlobLocation;

fn assert_matches_model(world: &World, index: &Index) -> std::result::Result<(), TestCaseError> {
    let model = world.model();
    for seed in 0..300u16 {
        let id = blob_id(seed);
        let got = index.get(&id).expect("lookup");
        match (model.get(&id), got) {
            (None, None) => {}
            (Some(valid), Some(loc)) => prop_assert!(
                valid.contains(&loc),
                "blob {seed}: {loc:?} is not one of {valid:?}"
            ),
            (want, got) => prop_assert!(false, "blob {seed}: want one of {want:?}, got {got:?}"),
        }
        prop_assert_eq!(
            index.contains(&id).expect("lookup"),
            model.contains_key(&id)
        );
        if let Some(loc) = got {
            let size = world
                .files
                .iter()
                .flat_map(|f| f.1.packs.iter())
                .find(|p| p.id == loc.pack)
                .map(|p| p.size);
            prop_assert_eq!(index.pack_size(&loc.pack), size);
        }
    }
    Ok(())
}

fn segment_paths(dir: &Path) -> Vec<PathBuf> {
    segment_files(dir).expect("list segments")
}

#[derive(Debug, Clone)]
enum Step {
    /// A backup adds an index file.
    Add(Vec<Vec<u16>>),
    /// A prune writes a file superseding some others, and maybe deletes them.
    Compact(Vec<usize>, bool),
    /// An index file disappears.
    Delete(usize),
    /// A cache segment is damaged: a byte flipped, truncated, or removed.
    Damage(usize, u8),
}

fn blobs() -> impl Strategy<Value = Vec<Vec<u16>>> {
    proptest::collection::vec(proptest::collection::vec(0u16..300, 0..25), 0..4)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => blobs().prop_map(Step::Add),
        1 => (proptest::collection::vec(any::<usize>(), 1..4), any::<bool>())
            .prop_map(|(v, d)| Step::Compact(v, d)),
        1 => any::<usize>().prop_map(Step::Delete),
        1 => (any::<usize>(), 0u8..3).prop_map(|(i, how)| Step::Damage(i, how)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn lookups_match_the_model_through_any_history(
        steps in proptest::collection::vec(step(), 1..14),
        run_records in prop_oneof![Just(3usize), Just(40), Just(RUN_RECORDS)],
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path().join("index");
        std::fs::create_dir(&dir).expect("mkdir");
        let mut world = World::default();
        for s in steps {
            match s {
                Step::Add(packs) => world.add(&packs, &[]),
                Step::Compact(which, delete) => {
                    if world.files.is_empty() {
                        continue;
                    }
                    let n = world.files.len();
                    let victims: Vec<usize> = which.iter().map(|i| i % n).collect();
                    // The new file lists what the victims listed (as prune's rewrite does).
                    let packs: Vec<Vec<u16>> = victims
                        .iter()
                        .flat_map(|&i| world.files[i].1.packs.iter())
                        .map(|p| p.blobs.iter().map(|b| b.raw_length as u16).collect())
                        .collect();
                    world.add(&packs, &victims);
                    if delete {
                        let gone: HashSet<IndexId> = victims.iter().map(|&i| world.files[i].0).collect();
                        world.files.retain(|f| !gone.contains(&f.0));
                    }
                }
                Step::Delete(i) => {
                    if !world.files.is_empty() {
                        let n = world.files.len();
                        world.files.remove(i % n);
                    }
                }
                Step::Damage(i, how) => {
                    let segs = segment_paths(&dir);
                    if let Some(p) = segs.get(i % segs.len().max(1)) {
                        let mut bytes = std::fs::read(p).expect("read segment");
                        match how {
                            0 => {
                                let at = i % bytes.len();
                                bytes[at] ^= 0x20;
                                std::fs::write(p, &bytes).expect("write");
                            }
                            1 => std::fs::write(p, &bytes[..i % bytes.len()]).expect("write"),
                            _ => std::fs::remove_file(p).expect("remove"),
                        }
                    }
                }
            }
            let (index, _) = world.load(&dir, run_records);
            assert_matches_model(&world, &index)?;
            // Nothing changed: the next load reads no index file and agrees.
            let (again, reads) = world.load(&dir, run_records);
            prop_assert!(reads.is_empty(), "an unchanged repository re-read {reads:?}");
            assert_matches_model(&world, &again)?;
            prop_assert!(again.segment_count() <= MAX_SEGMENTS);
        }
    }
}

#[test]
fn only_new_index_files_are_read_and_segments_stay_few() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().join("index");
    let mut world = World::default();
    let mut seed = 0u16;
    for round in 0..40 {
        let packs = vec![(0..5)
            .map(|_| {
                seed = seed.wrapping_add(1);
                seed
            })
            .collect()];
        world.add(&packs, &[]);
        let (index, reads) = world.load(&dir, 8);
        assert_eq!(
            reads,
            vec![world.files.last().expect("file").0],
            "round {round}"
        );
        // Size-tiered merging keeps O(log n) segments.
        assert!(
            index.segment_count() <= 7,
            "{} segments after {round} rounds",
            index.segment_count()
        );
        assert_eq!(segment_paths(&dir).len(), index.segment_count());
    }
}

#[test]
fn a_segment_of_another_repository_or_key_is_discarded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().join("index");
    let mut world = World::default();
    world.add(&[vec![1, 2, 3]], &[]);
    world.load(&dir, 8);
    let listing = world.listing();
    let files: HashMap<IndexId, IndexFile> = world.files.iter().cloned().collect();
    let mut reads = 0;
    // Same files, other MAC key: the segment does not verify, so the file is read again.
    let index = load(
        &dir,
        Source {
            repo: REPO,
            mac_key: &[8; 32],
            listing: &listing,
            read: &mut |id| {
                reads += 1;
                Ok(files.get(id).cloned())
            },
        },
        Tuning::default(),
    )
    .expect("load");
    assert_eq!(reads, 1);
    assert!(index.contains(&blob_id(2)).expect("lookup"));
    assert_eq!(segment_paths(&dir).len(), 1);
}

#[test]
fn a_damaged_index_file_is_not_covered_and_is_read_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().join("index");
    let mut world = World::default();
    world.add(&[vec![1]], &[]);
    world.add(&[vec![2]], &[]);
    let bad = world.files[1].0;
    let listing = world.listing();
    let files: HashMap<IndexId, IndexFile> = world.files.iter().cloned().collect();
    for _ in 0..2 {
        let mut reads = Vec::new();
        let index = load(
            &dir,
            Source {
                repo: REPO,
                mac_key: &MAC_KEY,
                listing: &listing,
                read: &mut |id| {
                    reads.push(*id);
                    Ok(if *id == bad {
                        None
                    } else {
                        files.get(id).cloned()
                    })
                },
            },
            Tuning::default(),
        )
        .expect("load");
        assert!(reads.contains(&bad));
        assert!(index.contains(&blob_id(1)).expect("lookup"));
        assert!(!index.contains(&blob_id(2)).expect("lookup"));
    }
}

#[test]
fn an_unwritable_cache_directory_is_a_cache_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let world = World::default();
    let listing = world.listing();
    let r = load(
        &file.join("index"),
        Source {
            repo: REPO,
            mac_key: &MAC_KEY,
            listing: &listing,
            read: &mut |_| Ok(None),
        },
        Tuning::default(),
    );
    assert!(matches!(r, Err(LoadError::Cache(_))), "{r:?}");
}
