//! Membership changes: learners, voters, removal, leader transfer. Each
//! refuses, before touching Raft, a change that names an unknown node or
//! would leave no voters.

use std::{collections::BTreeSet, time::Duration};

use openraft::{
    errors::{ChangeMembershipError, ClientWriteError, RaftError},
    BasicNode, ChangeMembers,
};

use flaredb_proto::raft as pb;

use super::{addr::MemberAddr, FlareNode};
use crate::{error::NodeError, types::NodeId};

impl FlareNode {
    fn write_error(&self, e: RaftError<crate::TypeConfig, ClientWriteError<crate::TypeConfig>>) -> NodeError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => self.not_leader(f.leader_id, f.leader_node),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(p))) => {
                NodeError::Unavailable(format!("another membership change is in progress ({p}); retry"))
            }
            RaftError::APIError(e) => NodeError::Precondition(e.to_string()),
            RaftError::Fatal(e) => NodeError::Fatal(e.to_string()),
        }
    }

    fn membership_sets(&self) -> (BTreeSet<NodeId>, std::collections::BTreeMap<NodeId, String>) {
        let m = self.metrics().membership_config;
        let voters = m.membership().voter_ids().collect();
        let nodes = m.membership().nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
        (voters, nodes)
    }

    /// Adds `id` at `addr` (`PUBLIC` or `PUBLIC@PEER`) as a learner; with
    /// `wait`, returns once it has caught up.
    pub async fn add_learner(&self, id: NodeId, addr: String, wait: bool) -> Result<(), NodeError> {
        if id == 0 {
            return Err(NodeError::Invalid("node ids start at 1".into()));
        }
        let addr = MemberAddr::parse(&addr).map_err(|why| NodeError::Invalid(format!("addr: {why}")))?.to_string();
        if self.shared.is_retired(id) {
            return Err(NodeError::Precondition(format!(
                "node id {id} was removed from this cluster; ids are never reused — start the new node with another id"
            )));
        }
        let (_, nodes) = self.membership_sets();
        if let Some(existing) = nodes.get(&id) {
            if *existing != addr {
                return Err(NodeError::Precondition(format!(
                    "node {id} is already a member at {existing}; node ids are never reused — remove it first or pick a new id"
                )));
            }
        }
        self.raft.add_learner(id, BasicNode::new(addr), wait).await.map(|_| ()).map_err(|e| self.write_error(e))
    }

    /// Makes exactly `voter_ids` the voters (joint consensus); former voters stay as learners.
    pub async fn change_membership(&self, voter_ids: BTreeSet<NodeId>) -> Result<(), NodeError> {
        if voter_ids.is_empty() {
            return Err(NodeError::Precondition("a cluster needs at least one voter".into()));
        }
        let (_, nodes) = self.membership_sets();
        if let Some(unknown) = voter_ids.iter().find(|id| !nodes.contains_key(id)) {
            return Err(NodeError::Precondition(format!(
                "node {unknown} is not a member; add it with AddLearner first"
            )));
        }
        self.raft
            .change_membership(ChangeMembers::ReplaceAllVoters(voter_ids), true)
            .await
            .map(|_| ())
            .map_err(|e| self.write_error(e))
    }

    /// Whether `id` may be removed: a member, and not the last voter.
    pub fn check_removal(&self, id: NodeId) -> Result<(), NodeError> {
        let (voters, nodes) = self.membership_sets();
        if !nodes.contains_key(&id) {
            return Err(NodeError::Precondition(format!("node {id} is not a member")));
        }
        if voters.contains(&id) && voters.len() == 1 {
            return Err(NodeError::Precondition(format!("node {id} is the last voter; a cluster needs one")));
        }
        Ok(())
    }

    /// Removes a voter or learner from the cluster. The caller hands
    /// leadership away first when `id` is this leader (see `step_down`).
    pub async fn remove_node(&self, id: NodeId) -> Result<(), NodeError> {
        self.check_removal(id)?;
        // Retire the id first: if the removal then fails, the id is still a
        // member and refusing to re-add it costs nothing.
        let retire = pb::command::Cmd::RetireNode(pb::RetireNode { node_id: id });
        self.propose(pb::Command { cmd: Some(retire), ..Default::default() }).await?;
        let (voters, _) = self.membership_sets();
        let change = if voters.contains(&id) {
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.raft.change_membership(change, false).await.map(|_| ()).map_err(|e| self.write_error(e))
    }

    /// Asks the leader to hand leadership to voter `to` and waits until it has.
    pub async fn transfer_leader(&self, to: NodeId, timeout: Duration) -> Result<(), NodeError> {
        let (voters, _) = self.membership_sets();
        if !voters.contains(&to) {
            return Err(NodeError::Precondition(format!("node {to} is not a voter")));
        }
        if !self.raft.is_leader() {
            return Err(self.not_leader(None, None));
        }
        if to == self.id {
            return Ok(());
        }
        self.raft.trigger().transfer_leader(to).await.map_err(|e| NodeError::Fatal(e.to_string()))?;
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader == Some(to), "leadership transferred")
            .await
            .map(|_| ())
            .map_err(|e| NodeError::Unavailable(format!("node {to} did not take over leadership: {e}")))
    }

    /// When this node is the leader, hands leadership to the most caught-up other voter.
    pub async fn step_down(&self, timeout: Duration) -> Result<(), NodeError> {
        let m = self.metrics();
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().filter(|v| *v != self.id).collect();
        let matched = m.replication.clone().unwrap_or_default();
        let best = voters
            .iter()
            .max_by_key(|v| matched.get(v).cloned().flatten().map(|l| l.index))
            .copied()
            .ok_or_else(|| NodeError::Precondition("no other voter to hand leadership to".into()))?;
        self.transfer_leader(best, timeout).await
    }
}
