use std::io::Write;

fn main() {
    let raw = serde_json::value::RawValue::from_string("{\"job\":1}".to_string()).unwrap();
    let mut buf: smallvec::SmallVec<[u8; 64]> = smallvec::SmallVec::new();
    buf.write_all(raw.get().as_bytes()).unwrap();
    let jobs = memchr::memchr_iter(b'j', &buf).count();
    println!(
        "worker ({}) {} job(s): {}",
        env!("WORKER_BUILD_PROFILE"),
        jobs,
        common::greeting("worker")
    );
}
