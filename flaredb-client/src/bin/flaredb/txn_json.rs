//! The JSON document `flaredb txn` reads, and the JSON it prints: text keys
//! and values, like the rest of the CLI.

use flaredb_client::{Compare, CompareOp, TxnOp, TxnOpResult, TxnResult};
use serde::{Deserialize, Serialize};

/// A transaction as read from the input: `{"compares": [...], "success": [...], "failure": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxnDoc {
    #[serde(default)]
    compares: Vec<CompareDoc>,
    #[serde(default)]
    success: Vec<OpDoc>,
    #[serde(default)]
    failure: Vec<OpDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareDoc {
    key: String,
    target: Target,
    op: OpName,
    /// Only with `"target": "version"`; absent means 0 (the key is absent).
    version: Option<u64>,
    /// Only with `"target": "value"`, where it is required.
    value: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Target {
    Version,
    Value,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum OpName {
    #[serde(rename = "=", alias = "equal")]
    Equal,
    #[serde(rename = "!=", alias = "not_equal")]
    NotEqual,
    #[serde(rename = ">", alias = "greater")]
    Greater,
    #[serde(rename = "<", alias = "less")]
    Less,
}

impl From<OpName> for CompareOp {
    fn from(op: OpName) -> Self {
        match op {
            OpName::Equal => CompareOp::Equal,
            OpName::NotEqual => CompareOp::NotEqual,
            OpName::Greater => CompareOp::Greater,
            OpName::Less => CompareOp::Less,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum OpDoc {
    Put { key: String, value: String },
    Delete { key: String },
    Get { key: String },
    DeletePrefix { prefix: String },
}

/// A checked transaction, ready for [`flaredb_client::Txn`]. `success_gets`
/// and `failure_gets` hold, per op of each branch, the key of a get (to name
/// it in the output when it finds nothing).
pub struct ParsedTxn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
    success_gets: Vec<Option<String>>,
    failure_gets: Vec<Option<String>>,
}

/// Parses and checks a document; the error names the problem (and for JSON
/// errors, the line and column).
pub fn parse(input: &[u8]) -> Result<ParsedTxn, String> {
    // serde would also take a struct as an array of its fields.
    match input.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("the document is empty (expected a JSON object)".into()),
        Some(b'{') => {}
        Some(_) => return Err("the document must be a JSON object: {\"compares\": [..], ...}".into()),
    }
    let doc: TxnDoc = serde_json::from_slice(input).map_err(|e| e.to_string())?;
    let compares =
        doc.compares.into_iter().enumerate().map(|(i, c)| compare(c).map_err(|e| format!("compares[{i}]: {e}")));
    let (success, success_gets) = branch("success", doc.success)?;
    let (failure, failure_gets) = branch("failure", doc.failure)?;
    Ok(ParsedTxn { compares: compares.collect::<Result<_, _>>()?, success, failure, success_gets, failure_gets })
}

fn compare(c: CompareDoc) -> Result<Compare, String> {
    let op = CompareOp::from(c.op);
    match (c.target, c.version, c.value) {
        (Target::Version, version, None) => Ok(Compare::version(c.key, op, version.unwrap_or(0))),
        (Target::Version, _, Some(_)) => Err("\"value\" is not allowed with \"target\": \"version\"".into()),
        (Target::Value, None, Some(value)) => Ok(Compare::value(c.key, op, value)),
        (Target::Value, Some(_), _) => Err("\"version\" is not allowed with \"target\": \"value\"".into()),
        (Target::Value, None, None) => Err("\"target\": \"value\" needs a \"value\"".into()),
    }
}

fn branch(name: &str, ops: Vec<OpDoc>) -> Result<(Vec<TxnOp>, Vec<Option<String>>), String> {
    let mut out = Vec::with_capacity(ops.len());
    let mut gets = Vec::with_capacity(ops.len());
    for (i, op) in ops.into_iter().enumerate() {
        gets.push(if let OpDoc::Get { key } = &op { Some(key.clone()) } else { None });
        out.push(match op {
            OpDoc::Put { key, value } => TxnOp::put(key, value),
            OpDoc::Delete { key } => TxnOp::delete(key),
            OpDoc::Get { key } => TxnOp::get(key),
            OpDoc::DeletePrefix { prefix } if prefix.is_empty() => {
                return Err(format!("{name}[{i}]: delete_prefix needs a non-empty \"prefix\""))
            }
            OpDoc::DeletePrefix { prefix } => TxnOp::delete_prefix(prefix),
        });
    }
    Ok((out, gets))
}

/// What `flaredb txn` prints: `{"succeeded": .., "revision": .., "results": [..]}`.
#[derive(Debug, Serialize)]
pub struct TxnOut {
    succeeded: bool,
    revision: u64,
    results: Vec<OpOut>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum OpOut {
    Put { version: u64 },
    Delete { deleted: u64 },
    Get(GetOut),
}

/// `{"found": true, "key", "value", "version"}`, or `{"found": false, "key"}`.
#[derive(Debug, Serialize)]
struct GetOut {
    found: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl ParsedTxn {
    /// The output for `r`, the result of committing this transaction.
    pub fn output(&self, r: TxnResult) -> TxnOut {
        let gets = if r.succeeded { &self.success_gets } else { &self.failure_gets };
        let results = r
            .results
            .into_iter()
            .enumerate()
            .map(|(i, res)| match res {
                TxnOpResult::Put { version } => OpOut::Put { version },
                TxnOpResult::Delete { deleted } => OpOut::Delete { deleted },
                TxnOpResult::Get(Some(kv)) => OpOut::Get(GetOut {
                    found: true,
                    key: Some(text(&kv.key)),
                    value: Some(text(&kv.value)),
                    version: Some(kv.version),
                }),
                TxnOpResult::Get(None) => {
                    OpOut::Get(GetOut { found: false, key: gets.get(i).cloned().flatten(), value: None, version: None })
                }
            })
            .collect();
        TxnOut { succeeded: r.succeeded, revision: r.revision, results }
    }
}

#[cfg(test)]
mod tests {
    use flaredb_client::VersionedKv;

    use super::*;

    #[test]
    fn parses_every_kind_of_compare_and_op() {
        let t = parse(
            br#"{"compares": [{"key": "a", "target": "version", "op": "=", "version": 3},
                              {"key": "b", "target": "value", "op": "not_equal", "value": "x"},
                              {"key": "c", "target": "version", "op": "<"}],
                 "success": [{"put": {"key": "a", "value": "1"}}, {"delete": {"key": "b"}},
                             {"get": {"key": "c"}}, {"delete_prefix": {"prefix": "tmp/"}}],
                 "failure": [{"get": {"key": "a"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            t.compares,
            [
                Compare::version("a", CompareOp::Equal, 3),
                Compare::value("b", CompareOp::NotEqual, "x"),
                Compare::version("c", CompareOp::Less, 0),
            ]
        );
        assert_eq!(
            t.success,
            [TxnOp::put("a", "1"), TxnOp::delete("b"), TxnOp::get("c"), TxnOp::delete_prefix("tmp/")]
        );
        assert_eq!(t.failure, [TxnOp::get("a")]);
    }

    #[test]
    fn every_list_is_optional() {
        let t = parse(b"{}").unwrap();
        assert!(t.compares.is_empty() && t.success.is_empty() && t.failure.is_empty());
    }

    #[track_caller]
    fn fails_with(input: &str, needle: &str) {
        match parse(input.as_bytes()) {
            Ok(_) => panic!("{input} parsed"),
            Err(e) => assert!(e.contains(needle), "{input}: {e:?} does not mention {needle:?}"),
        }
    }

    #[test]
    fn malformed_documents_say_what_is_wrong() {
        fails_with("{", "EOF");
        fails_with(" \n", "empty");
        fails_with("[]", "must be a JSON object");
        fails_with(r#"[[], [{"get": {"key": "a"}}]]"#, "must be a JSON object");
        fails_with(r#"{"compare": []}"#, "unknown field `compare`");
        fails_with(r#"{"compares": [{"key": "a", "target": "version", "op": "=~"}]}"#, "unknown variant `=~`");
        fails_with(r#"{"compares": [{"key": "a", "target": "size", "op": "="}]}"#, "unknown variant `size`");
        fails_with(r#"{"compares": [{"key": "a", "target": "version"}]}"#, "missing field `op`");
        fails_with(
            r#"{"compares": [{"key": "a", "target": "version", "op": "=", "extra": 1}]}"#,
            "unknown field `extra`",
        );
        fails_with(
            r#"{"compares": [{"key": "a", "target": "value", "op": "="}]}"#,
            "compares[0]: \"target\": \"value\" needs",
        );
        fails_with(r#"{"compares": [{"key": "a", "target": "version", "op": "=", "value": "x"}]}"#, "compares[0]");
        fails_with(
            r#"{"compares": [{"key": "a", "target": "value", "op": "=", "value": "x", "version": 1}]}"#,
            "not allowed",
        );
        fails_with(r#"{"success": [{"putt": {"key": "a", "value": "1"}}]}"#, "unknown variant `putt`");
        fails_with(r#"{"success": [{"put": {"key": "a", "value": "1", "lease": 5}}]}"#, "unknown field `lease`");
        fails_with(r#"{"success": [{"put": {"key": "a"}}]}"#, "missing field `value`");
        fails_with(r#"{"failure": [{"get": {"key": "a"}, "put": {"key": "a", "value": "1"}}]}"#, "");
        fails_with(
            r#"{"failure": [{"get": {"key": "a"}}, {"delete_prefix": {"prefix": ""}}]}"#,
            "failure[1]: delete_prefix",
        );
        fails_with(r#"{"success": [{"put": {"key": "a", "value": 1}}]}"#, "invalid type");
    }

    #[test]
    fn output_names_the_key_of_a_get_that_found_nothing() {
        let t = parse(
            br#"{"success": [{"put": {"key": "a", "value": "1"}}, {"get": {"key": "zz"}}, {"get": {"key": "a"}}],
                           "failure": [{"delete": {"key": "a"}}]}"#,
        )
        .unwrap();
        let kv = VersionedKv { key: "a".into(), value: b"\xff1".as_slice().into(), version: 9 };
        let r = TxnResult {
            succeeded: true,
            revision: 9,
            results: vec![TxnOpResult::Put { version: 9 }, TxnOpResult::Get(None), TxnOpResult::Get(Some(kv))],
        };
        assert_eq!(
            serde_json::to_string(&t.output(r)).unwrap(),
            r#"{"succeeded":true,"revision":9,"results":[{"put":{"version":9}},{"get":{"found":false,"key":"zz"}},{"get":{"found":true,"key":"a","value":"�1","version":9}}]}"#
        );
        let r = TxnResult { succeeded: false, revision: 9, results: vec![TxnOpResult::Delete { deleted: 0 }] };
        assert_eq!(
            serde_json::to_string(&t.output(r)).unwrap(),
            r#"{"succeeded":false,"revision":9,"results":[{"delete":{"deleted":0}}]}"#
        );
    }
}
