//! The JSON report (`--report FILE.json`, `--output json`): `schema_version: 1`.

use super::RunReport;

/// The report as pretty JSON bytes.
pub fn render(report: &RunReport) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(report).expect("the report serializes");
    out.push(b'\n');
    out
}
