//! `flaredb ns …`, `flaredb member …` and `flaredb status`: namespaces,
//! membership and the state of every member, through the Admin RPCs.

use std::{collections::BTreeSet, process::ExitCode, time::Duration};

use clap::Subcommand;
use flaredb_client::{ClientConfig, ClientError, NamespaceMode, RdbClient};
use flaredb_proto::v1::{self as pb, Role};
use serde_json::{json, Value};

use crate::output::{print_json, print_table, Output};

#[derive(Subcommand)]
pub enum NsCmd {
    /// Creates namespace NAME; succeeds if it exists with the same mode.
    ///
    /// Prints `NAME id ID` (JSON: {"name", "id", "mode"}).
    Create {
        name: String,
        /// strong: linearizable, versioned keys (get/put/del/scan/txn/watch);
        /// eventual: the raw-* commands.
        #[arg(long, value_parser = ["strong", "eventual"], default_value = "strong")]
        mode: String,
    },
    /// Lists the namespaces: name, id and mode, tab-separated
    /// (JSON: an array of {"name", "id", "mode"}).
    List,
    /// Each namespace's usage and quota: NAME, KEYS, MAX_KEYS, BYTES,
    /// MAX_BYTES (- for no limit). JSON: an array of {"name", "keys",
    /// "max_keys", "bytes", "max_bytes"} (0 = no limit).
    Usage,
    /// Sets namespace NAME's quota: at most --max-keys live keys and
    /// --max-bytes bytes of keys plus values (0 = no limit; an option left out
    /// is 0). A write past it fails (RESOURCE_EXHAUSTED); deletes always work.
    Quota {
        name: String,
        #[arg(long, default_value_t = 0)]
        max_keys: u64,
        #[arg(long, default_value_t = 0)]
        max_bytes: u64,
    },
}

fn usage_json(n: &pb::NamespaceInfo) -> Value {
    json!({"name": n.name, "keys": n.keys, "max_keys": n.max_keys, "bytes": n.bytes, "max_bytes": n.max_bytes})
}

fn usage_row(n: &pb::NamespaceInfo) -> Vec<String> {
    let limit = |v: u64| if v == 0 { "-".to_string() } else { v.to_string() };
    vec![n.name.clone(), n.keys.to_string(), limit(n.max_keys), n.bytes.to_string(), limit(n.max_bytes)]
}

const USAGE_HEADER: [&str; 5] = ["NAME", "KEYS", "MAX_KEYS", "BYTES", "MAX_BYTES"];

#[derive(Subcommand)]
pub enum MemberCmd {
    /// Lists the members as the node reached sees them: ID, ADDRESS,
    /// PEER_ADDRESS (- when Raft uses ADDRESS), ROLE (voter or learner) and
    /// LEADER (yes or no). JSON: an array of {"id", "addr", "peer_addr",
    /// "voter", "leader"}.
    List,
    /// Adds node ID, started with `flaredb-server --join` and an empty data
    /// dir, as a learner at ADDR ("PUBLIC" or "PUBLIC@PEER"); then prints
    /// the members. Promote it to a voter once it has caught up.
    Add {
        id: u64,
        addr: String,
        /// Return only once the learner has caught up with the leader.
        #[arg(long)]
        wait: bool,
    },
    /// Makes learner ID a voter (a membership change through joint
    /// consensus); then prints the members. Promoting a voter changes nothing.
    Promote { id: u64 },
    /// Removes member ID, voter or learner (a leader hands over first); then
    /// prints the members. Its id is never reused.
    Remove { id: u64 },
}

fn mode_name(mode: i32) -> &'static str {
    match NamespaceMode::try_from(mode).unwrap_or_default() {
        NamespaceMode::Strong => "strong",
        NamespaceMode::Eventual => "eventual",
        NamespaceMode::Unspecified => "unspecified",
    }
}

fn ns_json(n: &pb::NamespaceInfo) -> Value {
    json!({"name": n.name, "id": n.id, "mode": mode_name(n.mode)})
}

pub async fn ns(client: &RdbClient, out: Output, cmd: NsCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        NsCmd::Create { name, mode } => {
            let mode = if mode == "strong" { NamespaceMode::Strong } else { NamespaceMode::Eventual };
            let n = client.create_namespace(&name, mode).await?;
            if out.json() {
                print_json(&ns_json(&n));
            } else {
                println!("{} id {}", n.name, n.id);
            }
        }
        NsCmd::Usage => {
            let list = client.list_namespaces().await?;
            if out.json() {
                print_json(&Value::Array(list.iter().map(usage_json).collect()));
            } else {
                print_table(&USAGE_HEADER, &list.iter().map(usage_row).collect::<Vec<_>>());
            }
        }
        NsCmd::Quota { name, max_keys, max_bytes } => {
            let n = client.set_namespace_quota(&name, max_keys, max_bytes).await?;
            if out.json() {
                print_json(&usage_json(&n));
            } else {
                print_table(&USAGE_HEADER, &[usage_row(&n)]);
            }
        }
        NsCmd::List => {
            let list = client.list_namespaces().await?;
            if out.json() {
                print_json(&Value::Array(list.iter().map(ns_json).collect()));
            } else {
                for n in list {
                    println!("{}\t{}\t{:?}", n.name, n.id, NamespaceMode::try_from(n.mode).unwrap_or_default());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn member(client: &RdbClient, out: Output, cmd: MemberCmd) -> Result<ExitCode, ClientError> {
    let members = match cmd {
        MemberCmd::List => client.status().await?.members,
        MemberCmd::Add { id, addr, wait } => client.add_learner(id, &addr, wait).await?,
        MemberCmd::Promote { id } => {
            let members = client.status().await?.members;
            let Some(m) = members.iter().find(|m| m.id == id) else {
                return Err(ClientError::NotFound(format!(
                    "node {id} is not a member; add it with `flaredb member add` first"
                )));
            };
            if m.voter {
                members
            } else {
                let voters: BTreeSet<u64> = members.iter().filter(|m| m.voter).map(|m| m.id).chain([id]).collect();
                client.change_membership(voters).await?
            }
        }
        MemberCmd::Remove { id } => client.remove_node(id).await?,
    };
    // Who leads, as the node answering sees it (membership answers do not say).
    let leader = client.status().await.map(|s| s.leader_id).unwrap_or(0);
    print_members(out, &members, leader);
    Ok(ExitCode::SUCCESS)
}

fn print_members(out: Output, members: &[pb::Member], leader: u64) {
    if out.json() {
        let list = members
            .iter()
            .map(|m| {
                json!({"id": m.id, "addr": m.addr, "peer_addr": m.peer_addr, "voter": m.voter, "leader": m.id == leader})
            })
            .collect();
        print_json(&Value::Array(list));
        return;
    }
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.addr.clone(),
                if m.peer_addr.is_empty() { "-".into() } else { m.peer_addr.clone() },
                if m.voter { "voter" } else { "learner" }.into(),
                if m.id == leader { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    print_table(&["ID", "ADDRESS", "PEER_ADDRESS", "ROLE", "LEADER"], &rows);
}

fn role_name(role: i32) -> &'static str {
    match Role::try_from(role).unwrap_or_default() {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Learner => "learner",
        Role::Unspecified => "unknown",
    }
}

/// How long `status` waits for one member's answer.
const MEMBER_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks every member for its own status; prints a row per member. Fails
/// (after printing) when a member did not answer.
pub async fn status(client: &RdbClient, out: Output) -> Result<ExitCode, ClientError> {
    let members = client.status().await?.members;
    let config = ClientConfig {
        request_timeout: MEMBER_STATUS_TIMEOUT,
        retry_budget: MEMBER_STATUS_TIMEOUT,
        ..client.config().clone()
    };
    let answers = futures::future::join_all(members.iter().map(|m| {
        let config = config.clone();
        async move {
            // The node itself: Status is answered locally, never forwarded.
            let c = RdbClient::with_config([m.addr.as_str()], config)?;
            tokio::time::timeout(MEMBER_STATUS_TIMEOUT * 2, c.status())
                .await
                .unwrap_or_else(|_| Err(ClientError::Unavailable(format!("no answer from {}", m.addr))))
        }
    }))
    .await;
    // Lag is measured from the leader's applied index (the highest known, without a leader).
    let applied = answers.iter().filter_map(|a| a.as_ref().ok());
    let leader_applied = applied
        .clone()
        .find(|s| s.role == Role::Leader as i32)
        .or_else(|| applied.clone().max_by_key(|s| s.applied_index))
        .map_or(0, |s| s.applied_index);
    let failed = answers.iter().filter(|a| a.is_err()).count();
    if out.json() {
        let rows = members
            .iter()
            .zip(&answers)
            .map(|(m, a)| match a {
                Ok(s) => json!({
                    "id": m.id, "addr": m.addr, "voter": m.voter, "role": role_name(s.role),
                    "leader_id": s.leader_id, "term": s.term, "last_log_index": s.last_log_index,
                    "applied_index": s.applied_index, "lag": leader_applied.saturating_sub(s.applied_index),
                }),
                Err(e) => json!({"id": m.id, "addr": m.addr, "voter": m.voter, "error": e.to_string()}),
            })
            .collect();
        print_json(&Value::Array(rows));
    } else {
        let rows: Vec<Vec<String>> = members
            .iter()
            .zip(&answers)
            .map(|(m, a)| match a {
                Ok(s) => vec![
                    m.id.to_string(),
                    m.addr.clone(),
                    role_name(s.role).into(),
                    s.term.to_string(),
                    s.applied_index.to_string(),
                    leader_applied.saturating_sub(s.applied_index).to_string(),
                ],
                Err(e) => {
                    let e = e.to_string();
                    let row = [m.id.to_string(), m.addr.clone(), "unreachable".into(), "-".into(), "-".into()];
                    row.into_iter().chain([format!("- ({e})")]).collect()
                }
            })
            .collect();
        print_table(&["ID", "ADDRESS", "ROLE", "TERM", "APPLIED", "LAG"], &rows);
    }
    if failed > 0 {
        eprintln!("flaredb: {failed} of {} members did not answer", members.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
