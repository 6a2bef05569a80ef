//! Speaking the Raft transport as a stranger would: what a cluster calls
//! itself, and requests that carry that name.

/// What a cluster formed from `members` (id → address text) calls itself
/// (FNV-1a, as the server computes it at bootstrap).
pub fn cluster_id<'a>(members: impl IntoIterator<Item = (u64, &'a str)>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in members {
        for b in format!("{id}={addr};").bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h.max(1)
}

/// `msg` as a Raft RPC from a member of cluster `cluster_id`.
pub fn from_cluster<T>(msg: T, cluster_id: u64) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert("x-flaredb-cluster", format!("{cluster_id:016x}").parse().expect("hex is ASCII"));
    req
}
