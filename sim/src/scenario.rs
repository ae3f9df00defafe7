//! What to simulate: the policy config, the clients and their arrivals, the origin, memory.

use core::fmt;

use pacer::decimal::Decimal;
use pacer::json::{self, Value};
use serde::Serialize;

/// Most requests one scenario may generate (a browser tab keeps them all in memory).
pub const MAX_REQUESTS: u64 = 5_000_000;
/// Longest simulated span: a week.
pub const MAX_DURATION_S: u32 = 7 * 24 * 3600;
/// Most clients.
pub const MAX_CLIENTS: u32 = 100_000;

/// How clients send their requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Evenly spaced, clients interleaved.
    Steady,
    /// Independent random arrivals (exponential gaps) at the same mean rate.
    Poisson,
    /// Every `burst_period_s`, each client sends a period's worth at once.
    Bursts,
    /// Steady, but the origin answers 503 through the outage: the requests held back meanwhile
    /// (by backoff and the circuit) return together when it ends.
    Herd,
    /// A backlog, as `pacer run` works through a catalogue: each client sends its next request
    /// once the previous one is served, at most `rate_per_client` a second.
    Backlog,
}

impl Pattern {
    /// Every pattern, in the order the page lists them.
    pub const ALL: [Pattern; 5] = [
        Pattern::Steady,
        Pattern::Poisson,
        Pattern::Bursts,
        Pattern::Herd,
        Pattern::Backlog,
    ];

    /// The name in JSON and in the URL.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Steady => "steady",
            Pattern::Poisson => "poisson",
            Pattern::Bursts => "bursts",
            Pattern::Herd => "herd",
            Pattern::Backlog => "backlog",
        }
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A simulation's parameters; JSON field names match the page's URL parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// The policy config, ABI v1 JSON.
    pub config: String,
    /// Number of clients; client `i` uses limiter `i % limiters`.
    pub clients: u32,
    /// The arrival pattern.
    pub pattern: Pattern,
    /// Requests per second sent by each client, on average.
    pub rate_per_client: f64,
    /// Simulated span in seconds.
    pub duration_s: u32,
    /// Seed of the arrival trace (and of the module's entropy when the config has no seed).
    pub seed: u64,
    /// The origin's own limit in requests per second; `0` = unlimited.
    pub origin_rate: f64,
    /// The origin's burst.
    pub origin_burst: u32,
    /// Period of the `bursts` pattern, seconds.
    pub burst_period_s: u32,
    /// Start of the `herd` pattern's outage, seconds.
    pub outage_start_s: u32,
    /// End of the `herd` pattern's outage, seconds.
    pub outage_end_s: u32,
    /// Memory in use over time: `[seconds, fraction of the limit]` points, linear between them;
    /// empty = unknown (pressure stays Low).
    pub memory: Vec<[f64; 2]>,
    /// `base_ns` of each `next_delay` call, in ms (the jitter's base).
    pub base_ms: u32,
    /// Tokens each request costs.
    pub cost: u32,
    /// How long the origin takes to answer, ms: responses to requests sent meanwhile are in
    /// flight.
    pub latency_ms: u32,
    /// The origin's rate over time: `[seconds, requests per second]` points, each in force
    /// from its time on; empty = `origin_rate` throughout.
    pub origin_schedule: Vec<[f64; 2]>,
    /// Whether the origin announces what is left of its quota on every answer (`remaining`
    /// whole requests, and the time until as many more have come), as `RateLimit` headers do.
    pub announce: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            config: DEFAULT_CONFIG.to_string(),
            clients: 20,
            pattern: Pattern::Poisson,
            rate_per_client: 0.35,
            duration_s: 600,
            seed: 1,
            origin_rate: 8.0,
            origin_burst: 10,
            burst_period_s: 60,
            outage_start_s: 200,
            outage_end_s: 300,
            memory: vec![[0.0, 0.5], [300.0, 0.9], [450.0, 0.6], [600.0, 0.6]],
            base_ms: 0,
            cost: 1,
            latency_ms: 0,
            origin_schedule: Vec::new(),
            announce: false,
        }
    }
}

/// The page's starting policy: 7.5 requests per second, a 10-request burst.
pub const DEFAULT_CONFIG: &str = r#"{"seed":7,"limiters":[{"name":"origin","tokens_per_hour":27000,"burst":10}],"jitter":{"strategy":"adaptive","max_ms":500}}"#;

/// A parameter outside its range, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// The parameter, as in the JSON and the URL.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ScenarioError {}

fn invalid(field: &'static str, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        field,
        message: message.into(),
    }
}

impl Scenario {
    /// Parses and validates a scenario; every error names its field.
    ///
    /// Missing fields keep [`Scenario::default`]'s values; unknown fields are errors. Read
    /// with the core's own JSON reader, as the core reads its config: the browser's module
    /// carries no general-purpose parser.
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        let value = json::parse(text)
            .map_err(|e| invalid("", format!("scenario is not valid JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return Err(invalid("", "scenario must be a JSON object"));
        };
        let mut scenario = Scenario::default();
        for (name, value) in fields.iter() {
            // Matched by position in FIELDS: one string search instead of a comparison per arm.
            let Some(index) = FIELDS.iter().position(|field| field == name) else {
                return Err(invalid(
                    "",
                    format!(
                        "unknown field `{name}` (expected {})",
                        json::comma_list(FIELDS)
                    ),
                ));
            };
            let field = FIELDS[index];
            let s = &mut scenario;
            match index {
                0 => s.config = text_of(value, field)?,
                1 => s.clients = whole(value, field)?,
                2 => s.pattern = pattern_of(value)?,
                3 => s.rate_per_client = number(value, field)?,
                4 => s.duration_s = whole(value, field)?,
                5 => s.seed = whole(value, field)?,
                6 => s.origin_rate = number(value, field)?,
                7 => s.origin_burst = whole(value, field)?,
                8 => s.burst_period_s = whole(value, field)?,
                9 => s.outage_start_s = whole(value, field)?,
                10 => s.outage_end_s = whole(value, field)?,
                11 => s.memory = memory_of(value)?,
                12 => s.base_ms = whole(value, field)?,
                13 => s.cost = whole(value, field)?,
                14 => s.latency_ms = whole(value, field)?,
                #[cfg(feature = "goals")]
                16 => {
                    s.announce = match value {
                        Value::Bool(on) => *on,
                        _ => return Err(invalid(field, "must be true or false")),
                    }
                }
                _ => {
                    s.origin_schedule = pairs_of(
                        value,
                        field,
                        "must be a list of [seconds, requests per second] pairs",
                    )?
                }
            }
        }
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks every range; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if !(1..=MAX_CLIENTS).contains(&self.clients) {
            return Err(invalid(
                "clients",
                format!("must be from 1 to {MAX_CLIENTS}"),
            ));
        }
        if !(self.rate_per_client.is_finite() && self.rate_per_client > 0.0) {
            return Err(invalid("rate_per_client", "must be a number above 0"));
        }
        if !(1..=MAX_DURATION_S).contains(&self.duration_s) {
            return Err(invalid(
                "duration_s",
                format!("must be from 1 to {MAX_DURATION_S}"),
            ));
        }
        if self.seed > 1 << 53 {
            return Err(invalid("seed", "must be from 0 to 2^53"));
        }
        if !(self.origin_rate.is_finite() && self.origin_rate >= 0.0) {
            return Err(invalid(
                "origin_rate",
                "must be a number at least 0 (0 = unlimited)",
            ));
        }
        if self.origin_rate > 0.0 && (self.origin_rate * 3600.0) < 0.0001 {
            return Err(invalid("origin_rate", "is too slow to simulate"));
        }
        if self.origin_rate > 0.0 && self.origin_burst == 0 {
            return Err(invalid("origin_burst", "must be at least 1"));
        }
        if self.pattern == Pattern::Bursts && self.burst_period_s == 0 {
            return Err(invalid("burst_period_s", "must be at least 1"));
        }
        if self.pattern == Pattern::Herd && self.outage_start_s >= self.outage_end_s {
            return Err(invalid("outage_end_s", "must be after outage_start_s"));
        }
        self.validate_memory()?;
        self.validate_schedule()?;
        if self.cost == 0 {
            return Err(invalid("cost", "must be at least 1"));
        }
        // Whole numbers in the message: formatting a float would weigh on the browser's module.
        let requests = self.expected_requests() as u64;
        if requests > MAX_REQUESTS {
            let (requests, most) = (Decimal::from(requests), Decimal::from(MAX_REQUESTS));
            return Err(invalid(
                "rate_per_client",
                format!("clients × rate × duration makes {requests} requests; at most {most} fit"),
            ));
        }
        Ok(())
    }

    fn validate_memory(&self) -> Result<(), ScenarioError> {
        let mut previous = f64::NEG_INFINITY;
        for [t, fraction] in &self.memory {
            if !(t.is_finite() && *t >= 0.0 && *t > previous) {
                return Err(invalid("memory", "times must be at least 0 and increasing"));
            }
            if !(fraction.is_finite() && (0.0..=1.0).contains(fraction)) {
                return Err(invalid("memory", "fractions must be from 0 to 1"));
            }
            previous = *t;
        }
        Ok(())
    }

    fn validate_schedule(&self) -> Result<(), ScenarioError> {
        let mut previous = f64::NEG_INFINITY;
        for [t, rate] in &self.origin_schedule {
            if !(t.is_finite() && *t >= 0.0 && *t > previous) {
                return Err(invalid(
                    "origin_schedule",
                    "times must be at least 0 and increasing",
                ));
            }
            if !(rate.is_finite() && *rate * 3600.0 >= 0.0001) {
                return Err(invalid(
                    "origin_schedule",
                    "rates must be numbers above 0 (requests per second)",
                ));
            }
            previous = *t;
        }
        if !self.origin_schedule.is_empty() && self.origin_rate <= 0.0 {
            return Err(invalid(
                "origin_schedule",
                "needs a limited origin (origin_rate above 0)",
            ));
        }
        Ok(())
    }

    /// The origin's rate at `t_ns`, requests per second (0 = unlimited).
    pub fn origin_rate_at(&self, t_ns: u64) -> f64 {
        let t = t_ns as f64 / 1e9;
        self.origin_schedule
            .iter()
            .rev()
            .find(|[at, _]| *at <= t)
            .map_or(self.origin_rate, |[_, rate]| *rate)
    }

    /// About how many requests the trace holds (exact for steady and bursts).
    pub fn expected_requests(&self) -> f64 {
        let per_client = match self.pattern {
            Pattern::Bursts => {
                let periods = (self.duration_s / self.burst_period_s.max(1)) as f64 + 1.0;
                periods * self.burst_size() as f64
            }
            _ => self.rate_per_client * f64::from(self.duration_s),
        };
        per_client * f64::from(self.clients)
    }

    /// Requests each client sends at once in the `bursts` pattern.
    pub fn burst_size(&self) -> u64 {
        let size = libm::round(self.rate_per_client * f64::from(self.burst_period_s));
        (size as u64).max(1)
    }

    /// Memory in use at `t_ns` as a fraction of the limit (`None` = unknown).
    pub fn memory_at(&self, t_ns: u64) -> Option<f64> {
        memory_at(&self.memory, t_ns)
    }
}

/// A memory curve's value at `t_ns` (linear between its points; `None` when empty).
pub fn memory_at(memory: &[[f64; 2]], t_ns: u64) -> Option<f64> {
    let (first, last) = (memory.first()?, memory.last()?);
    let t = t_ns as f64 / 1e9;
    if t <= first[0] {
        return Some(first[1]);
    }
    if t >= last[0] {
        return Some(last[1]);
    }
    let after = memory.iter().position(|p| p[0] > t)?;
    let ([t0, f0], [t1, f1]) = (memory[after - 1], memory[after]);
    Some(f0 + (f1 - f0) * (t - t0) / (t1 - t0))
}

/// The fields of a scenario's JSON: `announce` only where the build has the goals' origin
/// (feature `goals`; elsewhere it is an unknown field).
pub const FIELDS: &[&str] = if cfg!(feature = "goals") {
    &ALL_FIELDS
} else {
    ALL_FIELDS.split_at(ALL_FIELDS.len() - 1).0
};

/// Every field, `announce` last.
const ALL_FIELDS: [&str; 17] = [
    "config",
    "clients",
    "pattern",
    "rate_per_client",
    "duration_s",
    "seed",
    "origin_rate",
    "origin_burst",
    "burst_period_s",
    "outage_start_s",
    "outage_end_s",
    "memory",
    "base_ms",
    "cost",
    "latency_ms",
    "origin_schedule",
    "announce",
];

fn text_of(value: &Value, field: &'static str) -> Result<String, ScenarioError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(field, "must be a string"))
}

fn number(value: &Value, field: &'static str) -> Result<f64, ScenarioError> {
    value
        .as_f64()
        .ok_or_else(|| invalid(field, "must be a number"))
}

/// A whole number that fits `T`; `3.0` counts, as in the policy config.
fn whole<T: TryFrom<u64>>(value: &Value, field: &'static str) -> Result<T, ScenarioError> {
    let whole = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|x| *x >= 0.0 && *x <= 9_007_199_254_740_992.0 && libm::trunc(*x) == *x)
            .map(|x| x as u64)
    });
    let whole = whole.ok_or_else(|| invalid(field, "must be a whole number, at least 0"))?;
    T::try_from(whole).map_err(|_| invalid(field, "is too large"))
}

fn pattern_of(value: &Value) -> Result<Pattern, ScenarioError> {
    Pattern::ALL
        .into_iter()
        .find(|p| value.as_str() == Some(p.name()))
        .ok_or_else(|| {
            invalid(
                "pattern",
                "must be one of steady, poisson, bursts, herd, backlog",
            )
        })
}

fn memory_of(value: &Value) -> Result<Vec<[f64; 2]>, ScenarioError> {
    pairs_of(
        value,
        "memory",
        "must be a list of [seconds, fraction] pairs",
    )
}

/// A list of `[number, number]` pairs.
fn pairs_of(
    value: &Value,
    field: &'static str,
    shape: &'static str,
) -> Result<Vec<[f64; 2]>, ScenarioError> {
    let shape = || invalid(field, shape);
    let points = value.as_array().ok_or_else(shape)?;
    let mut pairs = Vec::with_capacity(points.len());
    for point in points {
        let Some([t, v]) = point.as_array().map(Vec::as_slice) else {
            return Err(shape());
        };
        let (Some(t), Some(v)) = (t.as_f64(), v.as_f64()) else {
            return Err(invalid(field, "pairs must hold two numbers"));
        };
        pairs.push([t, v]);
    }
    Ok(pairs)
}
