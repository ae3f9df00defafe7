//! Embedding pacer: `cargo run -p pacer-host --features tokio --example embed` (after `make wasm`).
//! Sixteen tasks share one policy at 20 requests a second and wait for their slots.
use std::time::Instant;

use pacer_host::{Policy, Runtime, SandboxOptions, SharedPolicy, SystemEnvironment};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::new(SandboxOptions::default())?; // one engine, compile once
    let module = runtime.load_file("dist/pacer.wasm".as_ref())?; // checks the ABI
    let mut policy = Policy::new(&module, Box::new(SystemEnvironment::detect()))?;
    policy.configure(r#"{"limiters":[{"name":"api","tokens_per_hour":72000,"burst":5}]}"#)?;
    let api = policy.limiter_index("api").ok_or("no limiter api")?;
    let shared = SharedPolicy::new(policy);
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let shared = shared.clone();
            tokio::spawn(async move {
                shared.acquire(api, 1).await?; // sleeps until this task's slot
                println!("task {task:2} acts at {:?}", started.elapsed()); // ... the request ...
                shared.lock().on_response(api, 200, None) // and its status
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}
