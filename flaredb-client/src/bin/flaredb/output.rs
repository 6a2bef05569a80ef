//! `--output text|json`, aligned tables, and the exit codes scripts test.

use std::process::ExitCode;

use clap::ValueEnum;
use flaredb_client::ClientError;
use serde_json::Value;

/// A key (or lease, namespace, member) that does not exist.
pub const EXIT_NOT_FOUND: u8 = 2;
/// A compare (`--expect`) that did not hold.
pub const EXIT_CONFLICT: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

impl Output {
    pub fn json(self) -> bool {
        self == Output::Json
    }
}

/// Prints one JSON document on a line.
pub fn print_json(v: &Value) {
    println!("{v}");
}

/// The exit code of a command that failed with `e`.
pub fn error_exit_code(e: &ClientError) -> ExitCode {
    match e {
        ClientError::NotFound(_) => ExitCode::from(EXIT_NOT_FOUND),
        _ => ExitCode::FAILURE,
    }
}

/// Prints `rows` under `header`, each column as wide as its widest cell,
/// separated by two spaces (the last column is not padded).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", table(header, rows));
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_align_columns() {
        let rows = vec![
            vec!["1".into(), "127.0.0.1:2479".into(), "leader".into()],
            vec!["10".into(), "h:1".into(), "follower".into()],
        ];
        assert_eq!(
            super::table(&["ID", "ADDRESS", "ROLE"], &rows),
            "ID  ADDRESS         ROLE\n1   127.0.0.1:2479  leader\n10  h:1             follower\n"
        );
    }
}
