use std::sync::{Arc, Mutex};
use std::time::Duration;
use tidefall::Queue;

#[test]
fn smoke() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let q = Queue::<u64>::builder()
        .partitions(2)
        .processing_interval(Duration::from_millis(20))
        .processor(move |b: Vec<u64>| sink.lock().unwrap().extend(b))
        .start()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let q = q.clone();
            s.spawn(move || {
                for i in 0..100_000u64 {
                    q.push(t * 1_000_000 + i).unwrap();
                }
            });
        }
    });
    q.stop().unwrap();
    let mut v = seen.lock().unwrap().clone();
    assert_eq!(v.len(), 400_000);
    v.sort();
    v.dedup();
    assert_eq!(v.len(), 400_000);
    println!("{:?}", q.stats());
}
