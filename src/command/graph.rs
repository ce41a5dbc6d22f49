//! `journey graph`: prints one journey as Mermaid, dot or SVG.

use std::path::Path;

use crate::cli::GraphFormat;
use crate::error::Result;
use crate::exit::Exit;

/// Prints the graph of one journey file.
pub fn graph(path: &Path, format: GraphFormat) -> Result<Exit> {
    let journeys = super::load_journeys(&[path.to_path_buf()], false)?;
    for j in &journeys {
        let text = match format {
            GraphFormat::Mermaid => crate::graph::mermaid(j),
            GraphFormat::Dot => crate::graph::dot(j),
            GraphFormat::Svg => crate::graph::svg::draw(j, None),
        };
        crate::output::stdout(text.as_bytes())?;
    }
    Ok(Exit::Ok)
}
