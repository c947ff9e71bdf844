//! Failpoints: `TENANTRY_FAILPOINTS="STEP.before=crash,STEP.after=crash,STEP=error"`.
//!
//! `crash` aborts the process at once — no unwinding, no destructors, no cleanup — as a power
//! cut or `kill -9` would; `error` makes the step fail permanently. They exist so that tests
//! can prove every step survives a crash on either side of its effect, and are compiled into
//! release builds too (unset, they cost one map lookup per step).

use std::collections::HashMap;

/// Where in a step a failpoint fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// Before the step's effect.
    Before,
    /// After the step's effect, before its checkpoint.
    After,
    /// Instead of the step: a permanent error.
    Error,
}

/// The failpoints in force.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    points: HashMap<(String, Point), ()>,
}

impl Failpoints {
    /// Reads `TENANTRY_FAILPOINTS`.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("TENANTRY_FAILPOINTS") {
            Ok(spec) => Self::parse(&spec),
            Err(_) => Ok(Self::default()),
        }
    }

    /// Parses `STEP.before=crash,STEP.after=crash,STEP=error`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut points = HashMap::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (target, action) = item.split_once('=').ok_or_else(|| {
                format!("failpoint {item:?} has no '=': use STEP.before=crash, STEP.after=crash or STEP=error")
            })?;
            let point = match (target.split_once('.'), action) {
                (Some((step, "before")), "crash") => (step, Point::Before),
                (Some((step, "after")), "crash") => (step, Point::After),
                (None, "error") => (target, Point::Error),
                _ => {
                    return Err(format!(
                        "failpoint {item:?} is not one of STEP.before=crash, STEP.after=crash, STEP=error"
                    ));
                }
            };
            points.insert((point.0.to_owned(), point.1), ());
        }
        Ok(Self { points })
    }

    /// Whether a failpoint is set at `step`/`point`.
    pub fn is_set(&self, step: &str, point: Point) -> bool {
        self.points.contains_key(&(step.to_owned(), point))
    }

    /// Aborts the process if a crash failpoint is set at `step`/`point`.
    pub fn crash_if_set(&self, step: &str, point: Point) {
        if self.is_set(step, point) {
            eprintln!("failpoint: crashing at {step}.{point:?}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_refuses_others() {
        let f = Failpoints::parse("migrate.before=crash, seed.after=crash,storage=error").unwrap();
        assert!(f.is_set("migrate", Point::Before));
        assert!(f.is_set("seed", Point::After));
        assert!(f.is_set("storage", Point::Error));
        assert!(!f.is_set("migrate", Point::After));
        assert!(Failpoints::parse("migrate=crash").is_err());
        assert!(Failpoints::parse("migrate.during=crash").is_err());
        assert!(Failpoints::parse("nonsense").is_err());
    }
}
