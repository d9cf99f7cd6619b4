//! Configuration parsing and validation (`weir_conf::Config::from_text`), as `weir configtest`,
//! start and every reload run it.
//!
//! Run: `cargo bench -p weir-conf --bench config_parse`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use weir_conf::{Config, Source};

/// The commented reference configuration shipped in conf/.
const SHIPPED: &str = include_str!("../../conf/weir.conf");

/// A larger site: the shipped file plus 50 <Location> sections and 50 header rules.
fn large() -> String {
    let mut text = SHIPPED.to_string();
    for i in 0..50 {
        text.push_str(&format!("<Location /area{i}/>\n    Require local\n</Location>\n"));
        text.push_str(&format!("Header always set X-Area-{i} \"value {i}\"\n"));
    }
    text
}

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../conf"));
    let file = root.join("weir.conf");
    let large = large();
    let cases: [(&str, &str); 3] = [
        ("builtin", weir_conf::BUILTIN_DEFAULT),
        ("shipped_weir_conf", SHIPPED),
        ("shipped_plus_50_locations", &large),
    ];
    let mut group = c.benchmark_group("config_from_text");
    for (name, text) in cases {
        // Fail loudly rather than time the error path.
        Config::from_text(text, &file, Source::File(file.clone()), root.clone())
            .unwrap_or_else(|errors| panic!("{name}: {errors:?}"));
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
            b.iter(|| {
                black_box(Config::from_text(
                    black_box(text),
                    Path::new(&file),
                    Source::File(file.clone()),
                    root.clone(),
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
