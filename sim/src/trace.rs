//! The arrival trace: when each request arrives and from which client, fixed by the seed.
//!
//! The trace depends only on the scenario, never on the policy, so two configs compared side
//! by side see the very same requests.

use pacer::Rng;

use crate::scenario::{Pattern, Scenario};

const NS_PER_S: f64 = 1e9;

/// One request's arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Virtual time, ns from the start.
    pub at_ns: u64,
    /// The client that sends it.
    pub client: u32,
}

/// All arrivals before the end, in time order.
pub fn arrivals(scenario: &Scenario) -> Vec<Arrival> {
    let end_ns = u64::from(scenario.duration_s) * 1_000_000_000;
    let mut rng = Rng::from_seed(scenario.seed);
    match scenario.pattern {
        Pattern::Steady | Pattern::Herd => steady(scenario, end_ns),
        Pattern::Poisson => poisson(scenario, end_ns, &mut rng),
        Pattern::Bursts => bursts(scenario, end_ns),
        // Each client's first request; the rest follow as each is served (see [`next_in_backlog`]).
        Pattern::Backlog => (0..scenario.clients)
            .map(|client| Arrival { at_ns: 0, client })
            .collect(),
    }
}

/// In the `backlog` pattern: `client`'s next request, its previous one (which arrived at
/// `previous_ns`) served at `now`: at once, but at most `rate_per_client` a second.
pub fn next_in_backlog(scenario: &Scenario, client: u32, previous_ns: u64, now: u64) -> Arrival {
    let gap_ns = (NS_PER_S / scenario.rate_per_client) as u64;
    Arrival {
        at_ns: now.max(previous_ns.saturating_add(gap_ns)),
        client,
    }
}

fn total_rate(scenario: &Scenario) -> f64 {
    scenario.rate_per_client * f64::from(scenario.clients)
}

fn steady(scenario: &Scenario, end_ns: u64) -> Vec<Arrival> {
    let gap_ns = NS_PER_S / total_rate(scenario);
    let mut trace = Vec::with_capacity(scenario.expected_requests() as usize + 1);
    for k in 0u64.. {
        let at_ns = (k as f64 * gap_ns) as u64;
        if at_ns >= end_ns {
            break;
        }
        let client = (k % u64::from(scenario.clients)) as u32;
        trace.push(Arrival { at_ns, client });
    }
    trace
}

fn poisson(scenario: &Scenario, end_ns: u64, rng: &mut Rng) -> Vec<Arrival> {
    // Independent Poisson clients merge into one Poisson stream whose every arrival belongs
    // to a client drawn uniformly.
    let mean_gap_ns = NS_PER_S / total_rate(scenario);
    let mut trace = Vec::with_capacity(scenario.expected_requests() as usize + 16);
    let mut at = 0.0f64;
    loop {
        // U in (0, 1], so ln U is finite.
        let uniform = (rng.below(1 << 53) + 1) as f64 / (1u64 << 53) as f64;
        at += -libm::log(uniform) * mean_gap_ns;
        let at_ns = at as u64;
        if at_ns >= end_ns {
            break;
        }
        let client = rng.below(u64::from(scenario.clients)) as u32;
        trace.push(Arrival { at_ns, client });
    }
    trace
}

fn bursts(scenario: &Scenario, end_ns: u64) -> Vec<Arrival> {
    let period_ns = u64::from(scenario.burst_period_s) * 1_000_000_000;
    let size = scenario.burst_size();
    let mut trace = Vec::with_capacity(scenario.expected_requests() as usize);
    let mut at_ns = 0;
    while at_ns < end_ns {
        for client in 0..scenario.clients {
            trace.extend((0..size).map(|_| Arrival { at_ns, client }));
        }
        at_ns += period_ns;
    }
    trace
}
