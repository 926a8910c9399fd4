//! The reasoning trace `revenue-os kernel --explain` prints to stderr.

use std::fmt;

#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub findings: Vec<String>,
    pub scores: Vec<String>,
    pub decision: Vec<String>,
    pub learning: Vec<String>,
    /// One line per candidate: kept with its priority, or dropped with the reason.
    pub candidates: Vec<String>,
    pub result: String,
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let section = |f: &mut fmt::Formatter<'_>, title: &str, lines: &[String]| -> fmt::Result {
            writeln!(f, "== {title}")?;
            if lines.is_empty() {
                writeln!(f, "  (none)")?;
            }
            for l in lines {
                writeln!(f, "  {l}")?;
            }
            Ok(())
        };
        section(f, "data health", &self.findings)?;
        section(f, "scores", &self.scores)?;
        section(f, "decision", &self.decision)?;
        section(f, "learning", &self.learning)?;
        section(f, "candidates", &self.candidates)?;
        writeln!(f, "== result")?;
        writeln!(f, "  {}", self.result)
    }
}
