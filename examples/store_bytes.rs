//! Raw key/value bytes in an index by key kind, against its size on disk.
//! `cargo run --release --example store_bytes -- DB`
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: store_bytes DB"));
    let db = sled::Config::new()
        .path(dir.join("sled"))
        .open()
        .expect("open");
    let mut by: std::collections::BTreeMap<u8, (u64, u64, u64)> = Default::default();
    for item in db.iter() {
        let (k, v) = item.expect("read");
        let e = by.entry(k[0]).or_default();
        e.0 += 1;
        e.1 += k.len() as u64;
        e.2 += v.len() as u64;
    }
    for (kind, (n, kb, vb)) in by {
        println!(
            "{}: {n} keys, {kb} key bytes, {vb} value bytes",
            kind as char
        );
    }
    println!("size_on_disk {}", db.size_on_disk().unwrap_or(0));
}
