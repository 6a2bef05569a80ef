//! Conversions of openraft's RPC messages to and from `flaredb.raft.v1`.
//! Used on both ends of the transport: the peer client here and the Raft
//! gRPC service in the server.

use flaredb_proto::raft as pb;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};

use crate::{
    codec::{self, opt_log_id_from_pb, opt_log_id_to_pb, req_vote_from_pb, vote_to_pb, CodecError},
    types::TypeConfig,
};

pub fn append_req_to_pb(r: &AppendEntriesRequest<TypeConfig>) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        vote: Some(vote_to_pb(&r.vote)),
        prev_log_id: opt_log_id_to_pb(&r.prev_log_id),
        entries: r.entries.iter().map(codec::entry_to_pb).collect(),
        leader_commit: opt_log_id_to_pb(&r.leader_commit),
    }
}

pub fn append_req_from_pb(p: &pb::AppendEntriesRequest) -> Result<AppendEntriesRequest<TypeConfig>, CodecError> {
    Ok(AppendEntriesRequest {
        vote: req_vote_from_pb(&p.vote, "append entries")?,
        prev_log_id: opt_log_id_from_pb(&p.prev_log_id),
        entries: p.entries.iter().map(codec::entry_from_pb).collect::<Result<_, _>>()?,
        leader_commit: opt_log_id_from_pb(&p.leader_commit),
    })
}

pub fn append_resp_to_pb(r: &AppendEntriesResponse<TypeConfig>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(pb::Blank {}),
        AppendEntriesResponse::PartialSuccess(m) => {
            R::PartialSuccess(pb::PartialSuccess { matching: opt_log_id_to_pb(m) })
        }
        AppendEntriesResponse::Conflict => R::Conflict(pb::Blank {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_pb(v)),
    };
    pb::AppendEntriesResponse { result: Some(result) }
}

pub fn append_resp_from_pb(p: &pb::AppendEntriesResponse) -> Result<AppendEntriesResponse<TypeConfig>, CodecError> {
    use pb::append_entries_response::Result as R;
    Ok(match p.result.as_ref().ok_or(CodecError { what: "append response", detail: "empty".into() })? {
        R::Success(_) => AppendEntriesResponse::Success,
        R::PartialSuccess(ps) => AppendEntriesResponse::PartialSuccess(opt_log_id_from_pb(&ps.matching)),
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(v) => AppendEntriesResponse::HigherVote(codec::vote_from_pb(v)),
    })
}

pub fn stream_resp_to_pb(r: &StreamAppendResult<TypeConfig>) -> pb::StreamAppendResponse {
    use pb::stream_append_response::Result as R;
    let result = match r {
        Ok(m) => R::Accepted(pb::PartialSuccess { matching: opt_log_id_to_pb(m) }),
        Err(StreamAppendError::Conflict(id)) => R::Conflict(codec::log_id_to_pb(id)),
        Err(StreamAppendError::HigherVote(v)) => R::HigherVote(vote_to_pb(v)),
    };
    pb::StreamAppendResponse { result: Some(result) }
}

pub fn stream_resp_from_pb(p: &pb::StreamAppendResponse) -> Result<StreamAppendResult<TypeConfig>, CodecError> {
    use pb::stream_append_response::Result as R;
    Ok(match p.result.as_ref().ok_or(CodecError { what: "stream append response", detail: "empty".into() })? {
        R::Accepted(a) => Ok(opt_log_id_from_pb(&a.matching)),
        R::Conflict(id) => Err(StreamAppendError::Conflict(codec::log_id_from_pb(id))),
        R::HigherVote(v) => Err(StreamAppendError::HigherVote(codec::vote_from_pb(v))),
    })
}

pub fn vote_req_to_pb(r: &VoteRequest<TypeConfig>, pre_vote: bool) -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(vote_to_pb(&r.vote)),
        last_log_id: opt_log_id_to_pb(&r.last_log_id),
        leadership_transfer: r.leadership_transfer,
        pre_vote,
    }
}

pub fn vote_req_from_pb(p: &pb::VoteRequest) -> Result<VoteRequest<TypeConfig>, CodecError> {
    let mut r = VoteRequest::new(req_vote_from_pb(&p.vote, "vote request")?, opt_log_id_from_pb(&p.last_log_id));
    r.leadership_transfer = p.leadership_transfer;
    Ok(r)
}

pub fn vote_resp_to_pb(r: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: opt_log_id_to_pb(&r.last_log_id),
    }
}

pub fn vote_resp_from_pb(p: &pb::VoteResponse) -> Result<VoteResponse<TypeConfig>, CodecError> {
    Ok(VoteResponse::new(
        req_vote_from_pb(&p.vote, "vote response")?,
        opt_log_id_from_pb(&p.last_log_id),
        p.vote_granted,
    ))
}

pub fn snapshot_resp_from_pb(p: &pb::SnapshotResponse) -> Result<SnapshotResponse<TypeConfig>, CodecError> {
    Ok(SnapshotResponse::new(req_vote_from_pb(&p.vote, "snapshot response")?))
}

pub fn transfer_req_to_pb(r: &TransferLeaderRequest<TypeConfig>) -> pb::TransferLeaderRequest {
    pb::TransferLeaderRequest {
        from_leader: Some(vote_to_pb(r.from_leader())),
        to_node_id: *r.to_node_id(),
        last_log_id: r.last_log_id().map(codec::log_id_to_pb),
    }
}

pub fn transfer_req_from_pb(p: &pb::TransferLeaderRequest) -> Result<TransferLeaderRequest<TypeConfig>, CodecError> {
    Ok(TransferLeaderRequest::new(
        req_vote_from_pb(&p.from_leader, "transfer leader")?,
        p.to_node_id,
        opt_log_id_from_pb(&p.last_log_id),
    ))
}

pub fn transfer_resp_to_pb(r: &TransferLeaderResponse<TypeConfig>) -> pb::TransferLeaderResponse {
    use openraft::raft::TransferLeaderError as E;
    use pb::transfer_leader_response::Result as R;
    let result = match r {
        Ok(()) => R::Ok(pb::Blank {}),
        Err(E::VoteChanged { expected, actual }) => {
            R::VoteChanged(pb::VoteChanged { expected: Some(vote_to_pb(expected)), actual: Some(vote_to_pb(actual)) })
        }
        Err(E::LogNotFlushed { expected, actual }) => R::LogNotFlushed(pb::LogNotFlushed {
            expected: opt_log_id_to_pb(expected),
            actual: opt_log_id_to_pb(actual),
        }),
    };
    pb::TransferLeaderResponse { result: Some(result) }
}

pub fn transfer_resp_from_pb(p: &pb::TransferLeaderResponse) -> Result<TransferLeaderResponse<TypeConfig>, CodecError> {
    use openraft::raft::TransferLeaderError as E;
    use pb::transfer_leader_response::Result as R;
    Ok(match p.result.as_ref().ok_or(CodecError { what: "transfer response", detail: "empty".into() })? {
        R::Ok(_) => Ok(()),
        R::VoteChanged(v) => Err(E::VoteChanged {
            expected: req_vote_from_pb(&v.expected, "transfer response")?,
            actual: req_vote_from_pb(&v.actual, "transfer response")?,
        }),
        R::LogNotFlushed(l) => {
            Err(E::LogNotFlushed { expected: opt_log_id_from_pb(&l.expected), actual: opt_log_id_from_pb(&l.actual) })
        }
    })
}
