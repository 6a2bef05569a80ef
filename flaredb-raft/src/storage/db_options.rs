//! RocksDB options for FlareDB's workload: a small hot key set read by point
//! lookups (strong and raw keys), a log written sequentially and deleted by
//! range, and a metadata CF rewritten on every applied batch.
//!
//! The WAL is shared by every CF, and a WAL file can go only once every CF
//! with data in it has flushed; `max_total_wal_size` makes RocksDB flush the
//! CF holding the oldest WAL (usually the small `sm_meta` one), so WAL files
//! are recycled instead of piling up behind a memtable that rarely fills.

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options};

use super::db::{CF_CAS, CF_HISTORY, CF_LOG, CF_RAFT_META, CF_RAW, CF_SM_META};

/// Shared by every CF: index, filter and data blocks.
const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// Total WAL kept before the oldest CF is flushed.
const MAX_TOTAL_WAL_BYTES: u64 = 64 << 20;
/// All memtables together.
const DB_WRITE_BUFFER_BYTES: usize = 128 << 20;

pub fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    o.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    o.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
    // RocksDB's own info LOG: a few small files, not an ever-growing one.
    o.set_keep_log_file_num(3);
    o.set_max_log_file_size(8 << 20);
    o
}

pub fn cf_descriptors() -> Vec<ColumnFamilyDescriptor> {
    let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let point_reads = |write_buffer: usize| {
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(&cache);
        // Point lookups (a CAS reads the key's version) skip SSTs without the key.
        t.set_bloom_filter(10.0, false);
        t.set_cache_index_and_filter_blocks(true);
        t.set_pin_l0_filter_and_index_blocks_in_cache(true);
        let mut o = Options::default();
        o.set_block_based_table_factory(&t);
        // LZ4 at every level: the build links no other codec (a ZSTD
        // bottommost level would silently be stored uncompressed).
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_level_compaction_dynamic_level_bytes(true);
        o.set_write_buffer_size(write_buffer);
        o
    };
    // The log and the watch history: appended in key order, read back mostly
    // soon after, deleted by range.
    let sequential = |write_buffer: usize| {
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(&cache);
        let mut o = Options::default();
        o.set_block_based_table_factory(&t);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_write_buffer_size(write_buffer);
        o
    };
    vec![
        ColumnFamilyDescriptor::new(CF_LOG, sequential(32 << 20)),
        ColumnFamilyDescriptor::new(CF_RAFT_META, point_reads(4 << 20)),
        ColumnFamilyDescriptor::new(CF_CAS, point_reads(32 << 20)),
        ColumnFamilyDescriptor::new(CF_RAW, point_reads(32 << 20)),
        ColumnFamilyDescriptor::new(CF_SM_META, point_reads(4 << 20)),
        ColumnFamilyDescriptor::new(CF_HISTORY, sequential(16 << 20)),
    ]
}
