//! A synthetic metrics file, produced as it is read (nothing is held): what `revenue-os
//! ingest-bench` loads to measure throughput and peak memory without a file on disk.

use chrono::{Days, NaiveDate};
use std::io::Read;
use uuid::Uuid;

/// `tenants × metrics × days` rows of `tenant_id,metric_id,date,value`, tenant-major.
pub struct MetricsFile {
    tenants: u64,
    metrics: Vec<String>,
    days: u64,
    start: NaiveDate,
    next: u64,
    pending: Vec<u8>,
    at: usize,
}

/// The bench's tenant ids: a fixed prefix and the index.
pub fn bench_tenant(i: u64) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | u128::from(i))
}

impl MetricsFile {
    pub fn new(tenants: u64, metrics: Vec<String>, days: u64, start: NaiveDate) -> Self {
        MetricsFile {
            tenants,
            metrics,
            days,
            start,
            next: 0,
            pending: b"tenant_id,metric_id,date,value\n".to_vec(),
            at: 0,
        }
    }

    pub fn rows(&self) -> u64 {
        self.tenants * self.metrics.len() as u64 * self.days
    }

    fn refill(&mut self) {
        use std::io::Write;
        self.pending.clear();
        self.at = 0;
        let per_tenant = self.metrics.len() as u64 * self.days;
        while self.next < self.rows() && self.pending.len() < 32 * 1024 {
            let i = self.next;
            let (t, rest) = (i / per_tenant, i % per_tenant);
            let (m, d) = (rest / self.days, rest % self.days);
            let date = self
                .start
                .checked_add_days(Days::new(d))
                .unwrap_or(self.start);
            let value = (t % 997) as f64 * 10.0 + m as f64 + d as f64 / 8.0;
            let _ = writeln!(
                self.pending,
                "{},{},{date},{value}",
                bench_tenant(t),
                self.metrics[m as usize]
            );
            self.next += 1;
        }
    }
}

impl Read for MetricsFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.pending.len() {
            self.refill();
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
