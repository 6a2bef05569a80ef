//! Cluster administration through `flaredb.v1.Admin`. Membership calls go to
//! the leader (followers forward); status, hash, snapshot and backup are
//! answered by the node the client reaches.

use std::{collections::BTreeSet, io::Write};

use flaredb_proto::v1::{self as pb, admin_client::AdminClient};
use futures::StreamExt;

use crate::{
    client::{NamespaceMode, RdbClient},
    conn::Retry,
    ClientError,
};

impl RdbClient {
    /// Status of whichever node answers (the leader when known).
    pub async fn status(&self) -> Result<pb::StatusResponse, ClientError> {
        self.conn
            .call(Retry::Always, pb::StatusRequest {}, |ch, q| async move { AdminClient::new(ch).status(q).await })
            .await
    }

    /// Creates a namespace; succeeds if it exists with the same mode.
    pub async fn create_namespace(&self, name: &str, mode: NamespaceMode) -> Result<pb::NamespaceInfo, ClientError> {
        let msg = pb::CreateNamespaceRequest { name: name.to_string(), mode: mode as i32 };
        let r = self
            .conn
            .call(Retry::Always, msg, |ch, q| async move { AdminClient::new(ch).create_namespace(q).await })
            .await?;
        r.namespace.ok_or_else(|| ClientError::Server {
            code: tonic::Code::Internal,
            message: "no namespace in answer".into(),
        })
    }

    pub async fn list_namespaces(&self) -> Result<Vec<pb::NamespaceInfo>, ClientError> {
        let r = self
            .conn
            .call(Retry::Always, pb::ListNamespacesRequest {}, |ch, q| async move {
                AdminClient::new(ch).list_namespaces(q).await
            })
            .await?;
        Ok(r.namespaces)
    }

    /// Sets namespace `name`'s quota (0 = no limit): live keys, and bytes of
    /// keys plus values. A write past it fails with
    /// [`ClientError::ResourceExhausted`]. Returns the namespace with its usage.
    pub async fn set_namespace_quota(
        &self,
        name: &str,
        max_keys: u64,
        max_bytes: u64,
    ) -> Result<pb::NamespaceInfo, ClientError> {
        let msg = pb::SetNamespaceQuotaRequest { namespace: name.to_string(), max_keys, max_bytes };
        let r = self
            .conn
            .call(Retry::Always, msg, |ch, q| async move { AdminClient::new(ch).set_namespace_quota(q).await })
            .await?;
        r.namespace.ok_or_else(|| ClientError::Server {
            code: tonic::Code::Internal,
            message: "no namespace in answer".into(),
        })
    }

    /// Adds node `id` (started with `--join`) as a learner; with `wait`,
    /// returns once it has caught up.
    pub async fn add_learner(&self, id: u64, addr: &str, wait: bool) -> Result<Vec<pb::Member>, ClientError> {
        let msg = pb::AddLearnerRequest { node_id: id, addr: addr.to_string(), wait };
        let r = self
            .conn
            .call(Retry::Always, msg, |ch, q| async move { AdminClient::new(ch).add_learner(q).await })
            .await?;
        Ok(r.members)
    }

    /// Makes exactly `voters` the voting members.
    pub async fn change_membership(&self, voters: BTreeSet<u64>) -> Result<Vec<pb::Member>, ClientError> {
        let msg = pb::ChangeMembershipRequest { voter_ids: voters.into_iter().collect() };
        let r = self
            .conn
            .call(Retry::Always, msg, |ch, q| async move { AdminClient::new(ch).change_membership(q).await })
            .await?;
        Ok(r.members)
    }

    pub async fn remove_node(&self, id: u64) -> Result<Vec<pb::Member>, ClientError> {
        let msg = pb::RemoveNodeRequest { node_id: id };
        let r = self
            .conn
            .call(Retry::Always, msg, |ch, q| async move { AdminClient::new(ch).remove_node(q).await })
            .await?;
        Ok(r.members)
    }

    pub async fn transfer_leader(&self, to: u64) -> Result<(), ClientError> {
        let msg = pb::TransferLeaderRequest { to_node_id: to };
        self.conn
            .call(Retry::Always, msg, |ch, q| async move { AdminClient::new(ch).transfer_leader(q).await })
            .await?;
        Ok(())
    }

    /// Builds a snapshot on the node reached; returns the index it covers.
    pub async fn snapshot(&self) -> Result<u64, ClientError> {
        let r = self
            .conn
            .call(Retry::Always, pb::SnapshotRequest {}, |ch, q| async move { AdminClient::new(ch).snapshot(q).await })
            .await?;
        Ok(r.snapshot_index)
    }

    /// (applied index, state hash) of the node reached.
    pub async fn hash(&self) -> Result<(u64, u64), ClientError> {
        let r = self
            .conn
            .call(Retry::Always, pb::HashRequest {}, |ch, q| async move { AdminClient::new(ch).hash(q).await })
            .await?;
        Ok((r.applied_index, r.hash))
    }

    /// Streams a backup of the node reached into `out`; returns its size.
    pub async fn backup(&self, out: &mut impl Write) -> Result<u64, ClientError> {
        let mut stream = self
            .conn
            .call(Retry::Always, pb::BackupRequest {}, |ch, q| async move { AdminClient::new(ch).backup(q).await })
            .await?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|s| ClientError::from_status(&s))?;
            out.write_all(&chunk.data).map_err(|e| ClientError::Unavailable(format!("writing backup: {e}")))?;
            total += chunk.data.len() as u64;
        }
        Ok(total)
    }
}
