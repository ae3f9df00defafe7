//! `pacer simulate` and `pacer serve`: the load simulator natively, and the page that runs it
//! in a browser.

use std::path::{Path, PathBuf};

use pacer_cli::site::Site;
use pacer_sim::{CoreEngine, Scenario, Simulation};

/// The page's directory in a checkout (`make www` fills its `pkg/` and `vendor/`).
const WWW_DIR: &str = "www";

/// The scorecard's scenarios in a checkout.
const SCENARIOS_DIR: &str = "sim/scenarios";

/// `relative` (a path inside a pacer checkout) under the current directory, else under the
/// checkout this binary was built in (`target/<profile>/pacer` is two levels down): nothing
/// about the build machine is baked in.
pub fn in_checkout(relative: &str) -> Option<PathBuf> {
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("../..").join(relative)));
    let found = [Some(PathBuf::from(relative)), beside_exe]
        .into_iter()
        .flatten()
        .find(|path| path.exists())?;
    Some(std::fs::canonicalize(&found).unwrap_or(found))
}

/// Reads a scenario file (`-` = stdin).
fn read_scenario(path: &Path) -> Result<Scenario, String> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("stdin: {e}"))?
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
    };
    Scenario::from_json(&text).map_err(|e| format!("{}: scenario: {e}", path.display()))
}

/// Runs a scenario (JSON, as the page's "JSON" export and URL use) on the native core.
pub fn simulate(scenario: Option<&Path>, json: bool) -> Result<(), String> {
    let scenario = match scenario {
        None => Scenario::default(),
        Some(path) => read_scenario(path)?,
    };
    let report = Simulation::new(scenario, CoreEngine::new())
        .and_then(Simulation::run)
        .map_err(|e| e.to_string())?;
    if json {
        let text = serde_json::to_string(&report).map_err(|e| e.to_string())?;
        say!("{text}");
        return Ok(());
    }
    let s = &report.summary;
    say!("requests            {:>12}", s.requests);
    say!("served (200)        {:>12}", s.admitted);
    say!("429s                {:>12}", s.rejected_429);
    say!("503s                {:>12}", s.failed_503);
    say!("circuit refusals    {:>12}", s.refused_circuit);
    say!("waiting at the end  {:>12}", s.waiting_at_end);
    say!("wait p50            {:>12.1} ms", s.wait_p50_ms);
    say!("wait p99            {:>12.1} ms", s.wait_p99_ms);
    say!("wait max            {:>12.1} ms", s.wait_max_ms);
    say!("achieved            {:>12.1} /h", s.achieved_per_hour);
    say!("quota               {:>12.1} /h", s.quota_per_hour);
    say!(
        "achieved / quota    {:>12.1} %",
        s.achieved_vs_quota * 100.0
    );
    Ok(())
}

/// Scores pacer against the baselines: `scenario`, or every file in `sim/scenarios/`.
pub fn scorecard(scenario: Option<&Path>, seeds: u64, json: bool) -> Result<(), String> {
    let paths = match scenario {
        Some(path) => vec![path.to_path_buf()],
        None => {
            let dir = in_checkout(SCENARIOS_DIR)
                .ok_or("no sim/scenarios here or beside this binary: pass --scenario FILE")?;
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "json"))
                .collect();
            paths.sort();
            paths
        }
    };
    let mut all = serde_json::Map::new();
    for path in &paths {
        let scenario = read_scenario(path)?;
        let name = path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
        let cards = pacer_sim::scorecard::over_seeds(&scenario, seeds)?;
        if json {
            let value = serde_json::to_value(&cards).map_err(|e| e.to_string())?;
            all.insert(name, value);
            continue;
        }
        let last = scenario.seed + seeds - 1;
        say!(
            "### {name} (seeds {}–{last}; means, worst recovery, window and fairness)\n",
            scenario.seed
        );
        say!(
            "{}",
            pacer_sim::scorecard::table(&pacer_sim::scorecard::combine(&cards))
        );
    }
    if json {
        say!("{}", serde_json::Value::Object(all));
    }
    Ok(())
}

/// Serves the page until Ctrl-C.
pub fn serve(dir: Option<&Path>, port: u16) -> Result<(), String> {
    let root = match dir {
        Some(dir) => dir.to_path_buf(),
        None => in_checkout(WWW_DIR)
            .ok_or("no www/ here or beside this binary: pass --dir with the page's folder")?,
    };
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    for built in [
        "pkg/pacer_www.js",
        "pkg/pacer_www_bg.wasm",
        "vendor/uPlot.esm.js",
    ] {
        if !root.join(built).is_file() {
            return Err(format!(
                "{} is missing: build the page with `make www`",
                root.join(built).display()
            ));
        }
    }
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio: {e}"))?;
    runtime.block_on(async {
        let site = Site::start(root.clone(), port)
            .await
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        say!("pacer serve: the load simulator at {}", site.url());
        say!("  serving {} (Ctrl-C stops)", root.display());
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
    })
}
