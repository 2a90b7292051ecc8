//! Maintenance windows: weekly slots in an IANA time zone, a slot possibly crossing
//! midnight, and a cutoff before each close in which no new wave starts.
//!
//! Slots are laid out on the local calendar and then turned into instants, so a
//! window keeps its wall-clock times across DST changes: a local time that does not
//! exist (the spring gap) moves to the first minute after the gap, an ambiguous one
//! (the autumn repeat) is its first occurrence. Overlapping or touching slots merge
//! into one open period. Everything here is a function of an instant handed in (the
//! caller's clock), so it is tested with any "now".

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A window as planned (and stored, and shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowSpec {
    pub time_zone: String,
    pub weekly: Vec<SlotSpec>,
    #[serde(default)]
    pub cutoff_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotSpec {
    /// `Mon` … `Sun` (or the full English names), any case.
    pub days: Vec<String>,
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM` (`24:00` for midnight at the end of the day); at or before `start`
    /// means the next day.
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub spec: WindowSpec,
    zone: Tz,
    slots: Vec<Slot>,
    cutoff: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    days: Vec<Weekday>,
    start: NaiveTime,
    /// Minutes after `start` (1 to 1440).
    length: i64,
}

/// Whether items may start at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    Open { closes_at: DateTime<Utc> },
    Closed { opens_at: DateTime<Utc> },
}

/// Whether a new wave may start at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaveStart {
    /// Now; its items run until `closes_at`.
    Now { closes_at: DateTime<Utc> },
    /// Not before this instant (the next opening, or the one after the cutoff).
    At(DateTime<Utc>),
}

impl Window {
    /// Validates a window, naming the field at fault.
    pub fn parse(spec: WindowSpec) -> Result<Self, Error> {
        let zone: Tz = spec.time_zone.parse().map_err(|_| {
            Error::invalid(format!(
                "window.timeZone must be an IANA time zone such as \"Europe/Berlin\", not \"{}\"",
                spec.time_zone
            ))
        })?;
        if spec.weekly.is_empty() {
            return Err(Error::invalid("window.weekly must list at least one slot"));
        }
        let mut slots = Vec::with_capacity(spec.weekly.len());
        for (n, slot) in spec.weekly.iter().enumerate() {
            if slot.days.is_empty() {
                return Err(Error::invalid(format!(
                    "window.weekly[{n}].days must list at least one day"
                )));
            }
            let days = slot
                .days
                .iter()
                .map(|d| {
                    parse_day(d).ok_or_else(|| {
                        Error::invalid(format!(
                            "window.weekly[{n}].days: \"{d}\" is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let start = parse_minutes(&slot.start, false).ok_or_else(|| {
                Error::invalid(format!(
                    "window.weekly[{n}].start must be a time HH:MM, not \"{}\"",
                    slot.start
                ))
            })?;
            let end = parse_minutes(&slot.end, true).ok_or_else(|| {
                Error::invalid(format!(
                    "window.weekly[{n}].end must be a time HH:MM (or 24:00), not \"{}\"",
                    slot.end
                ))
            })?;
            let length = if end > start {
                end - start
            } else {
                end + 1440 - start
            };
            if i64::from(spec.cutoff_minutes) >= length {
                return Err(Error::invalid(format!(
                    "window.cutoffMinutes ({}) must be shorter than window.weekly[{n}] ({length} minutes), or no wave could ever start in it",
                    spec.cutoff_minutes
                )));
            }
            slots.push(Slot {
                days,
                start: NaiveTime::from_hms_opt((start / 60) as u32, (start % 60) as u32, 0)
                    .expect("validated"),
                length,
            });
        }
        Ok(Window {
            cutoff: Duration::minutes(i64::from(spec.cutoff_minutes)),
            spec,
            zone,
            slots,
        })
    }

    /// Open (until when) or closed (until when) at `now`.
    pub fn at(&self, now: DateTime<Utc>) -> WindowState {
        let periods = self.periods_around(now);
        if let Some((_, end)) = periods.iter().find(|(s, e)| *s <= now && now < *e) {
            return WindowState::Open { closes_at: *end };
        }
        let opens_at = periods
            .iter()
            .map(|(s, _)| *s)
            .find(|s| *s > now)
            .expect("every validated window opens within a week");
        WindowState::Closed { opens_at }
    }

    /// Whether a wave may start at `now`: inside a window and not within the cutoff
    /// of its close.
    pub fn wave_start(&self, now: DateTime<Utc>) -> WaveStart {
        match self.at(now) {
            WindowState::Open { closes_at } if now + self.cutoff < closes_at => {
                WaveStart::Now { closes_at }
            }
            WindowState::Open { closes_at } => match self.at(closes_at) {
                WindowState::Closed { opens_at } => WaveStart::At(opens_at),
                // Merged periods never touch, so a close is never inside another.
                WindowState::Open { .. } => WaveStart::At(closes_at),
            },
            WindowState::Closed { opens_at } => WaveStart::At(opens_at),
        }
    }

    /// The open periods from two days before `now` to nine days after, merged, in
    /// order.
    fn periods_around(&self, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let today = now.with_timezone(&self.zone).date_naive();
        let mut periods = Vec::new();
        for offset in -2..=9 {
            let day = today + Duration::days(offset);
            for slot in &self.slots {
                if !slot.days.contains(&day.weekday()) {
                    continue;
                }
                let start_local = day.and_time(slot.start);
                let end_local = start_local + Duration::minutes(slot.length);
                let (start, end) = (self.instant(start_local), self.instant(end_local));
                if end > start {
                    periods.push((start, end));
                }
            }
        }
        periods.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(periods.len());
        for (start, end) in periods {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// The instant of a local wall-clock time: in a gap, the first minute after it;
    /// when repeated, the first occurrence.
    fn instant(&self, local: chrono::NaiveDateTime) -> DateTime<Utc> {
        let mut probe = local;
        for _ in 0..=24 * 60 {
            match self.zone.from_local_datetime(&probe) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
                LocalResult::None => probe += Duration::minutes(1),
            }
        }
        // No zone has a gap of a day; read it as UTC rather than fail.
        Utc.from_utc_datetime(&local)
    }
}

fn parse_day(raw: &str) -> Option<Weekday> {
    let lower = raw.trim().to_ascii_lowercase();
    let short = lower.get(..3)?;
    let day = match short {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    };
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    (lower.len() == 3 || full.contains(&lower.as_str())).then_some(day)
}

/// `HH:MM` as minutes after midnight; `24:00` only where `end_of_day` allows it.
fn parse_minutes(raw: &str, end_of_day: bool) -> Option<i64> {
    let (h, m) = raw.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if end_of_day && h == 24 && m == 0 {
        return Some(1440);
    }
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(zone: &str, days: &[&str], start: &str, end: &str, cutoff: u32) -> Window {
        Window::parse(WindowSpec {
            time_zone: zone.into(),
            weekly: vec![SlotSpec {
                days: days.iter().map(|d| d.to_string()).collect(),
                start: start.into(),
                end: end.into(),
            }],
            cutoff_minutes: cutoff,
        })
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ymd(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(y, m, d).expect("a date")
    }

    const EVERY_DAY: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

    #[test]
    fn a_berlin_window_keeps_its_wall_clock_times_across_the_spring_change() {
        // 2026-03-29 02:00 CET becomes 03:00 CEST. A 01:00–04:00 window is three
        // hours on the 28th and two on the 29th.
        let w = window("Europe/Berlin", EVERY_DAY, "01:00", "04:00", 0);
        assert_eq!(
            w.at(utc("2026-03-28T00:30:00Z")),
            WindowState::Open {
                closes_at: utc("2026-03-28T03:00:00Z")
            }
        );
        assert_eq!(
            w.at(utc("2026-03-28T23:59:00Z")),
            WindowState::Closed {
                opens_at: utc("2026-03-29T00:00:00Z")
            },
            "00:59 CET: one minute before it opens"
        );
        assert_eq!(
            w.at(utc("2026-03-29T00:30:00Z")),
            WindowState::Open {
                closes_at: utc("2026-03-29T02:00:00Z")
            },
            "04:00 CEST is 02:00Z"
        );
        assert_eq!(
            w.at(utc("2026-03-29T02:00:00Z")),
            WindowState::Closed {
                opens_at: utc("2026-03-29T23:00:00Z")
            },
            "the next opening is 01:00 CEST"
        );
    }

    #[test]
    fn a_window_starting_inside_the_spring_gap_opens_at_the_first_minute_after_it() {
        let w = window("Europe/Berlin", &["Sun"], "02:30", "05:00", 0);
        assert_eq!(
            w.at(utc("2026-03-28T12:00:00Z")),
            WindowState::Closed {
                opens_at: utc("2026-03-29T01:00:00Z")
            }
        );
    }

    #[test]
    fn a_new_york_window_in_the_repeated_autumn_hour_opens_at_its_first_occurrence() {
        // 2026-11-01 02:00 EDT becomes 01:00 EST: 01:30 happens twice.
        let w = window("America/New_York", &["Sun"], "01:30", "03:00", 0);
        assert_eq!(
            w.at(utc("2026-10-31T12:00:00Z")),
            WindowState::Closed {
                opens_at: utc("2026-11-01T05:30:00Z")
            }
        );
        // 03:00 EST is 08:00Z: the window is two and a half hours long that night.
        assert_eq!(
            w.at(utc("2026-11-01T06:45:00Z")),
            WindowState::Open {
                closes_at: utc("2026-11-01T08:00:00Z")
            }
        );
        // A week later (EST all along): 06:30Z to 08:00Z.
        assert_eq!(
            w.at(utc("2026-11-01T08:00:00Z")),
            WindowState::Closed {
                opens_at: utc("2026-11-08T06:30:00Z")
            }
        );
    }

    #[test]
    fn a_window_across_midnight_is_open_on_the_next_morning() {
        // Friday 22:00 to Saturday 02:00 (2026-12-04 is a Friday).
        let w = window("UTC", &["Fri"], "22:00", "02:00", 0);
        assert_eq!(
            w.at(utc("2026-12-05T01:00:00Z")),
            WindowState::Open {
                closes_at: utc("2026-12-05T02:00:00Z")
            }
        );
        assert_eq!(
            w.at(utc("2026-12-05T03:00:00Z")),
            WindowState::Closed {
                opens_at: utc("2026-12-11T22:00:00Z")
            }
        );
        assert_eq!(
            w.at(utc("2026-12-04T21:59:59Z")),
            WindowState::Closed {
                opens_at: utc("2026-12-04T22:00:00Z")
            }
        );
    }

    #[test]
    fn no_wave_starts_within_the_cutoff_and_the_next_opening_is_named() {
        let w = window("Europe/Berlin", EVERY_DAY, "01:00", "04:00", 60);
        // 2026-12-01 (CET): open 00:00Z to 03:00Z; the cutoff begins at 02:00Z.
        assert_eq!(
            w.wave_start(utc("2026-12-01T01:59:00Z")),
            WaveStart::Now {
                closes_at: utc("2026-12-01T03:00:00Z")
            }
        );
        assert_eq!(
            w.wave_start(utc("2026-12-01T02:10:00Z")),
            WaveStart::At(utc("2026-12-02T00:00:00Z"))
        );
        assert_eq!(
            w.wave_start(utc("2026-12-01T12:00:00Z")),
            WaveStart::At(utc("2026-12-02T00:00:00Z"))
        );
    }

    #[test]
    fn touching_slots_are_one_open_period() {
        let w = Window::parse(WindowSpec {
            time_zone: "UTC".into(),
            weekly: vec![
                SlotSpec {
                    days: vec!["Mon".into()],
                    start: "20:00".into(),
                    end: "24:00".into(),
                },
                SlotSpec {
                    days: vec!["tuesday".into()],
                    start: "00:00".into(),
                    end: "03:00".into(),
                },
            ],
            cutoff_minutes: 0,
        })
        .unwrap();
        // 2026-11-30 is a Monday.
        assert_eq!(
            w.at(utc("2026-11-30T21:00:00Z")),
            WindowState::Open {
                closes_at: utc("2026-12-01T03:00:00Z")
            }
        );
    }

    #[test]
    fn a_window_that_is_wrong_names_the_field() {
        let bad = |zone: &str, day: &str, start: &str, end: &str, cutoff: u32| {
            Window::parse(WindowSpec {
                time_zone: zone.into(),
                weekly: vec![SlotSpec {
                    days: vec![day.into()],
                    start: start.into(),
                    end: end.into(),
                }],
                cutoff_minutes: cutoff,
            })
            .unwrap_err()
            .to_string()
        };
        assert!(bad("Mars/Olympus", "Mon", "01:00", "02:00", 0).contains("window.timeZone"));
        assert!(bad("UTC", "Someday", "01:00", "02:00", 0).contains("window.weekly[0].days"));
        assert!(bad("UTC", "Mon", "25:00", "02:00", 0).contains("window.weekly[0].start"));
        assert!(bad("UTC", "Mon", "01:00", "2am", 0).contains("window.weekly[0].end"));
        assert!(bad("UTC", "Mon", "01:00", "02:00", 60).contains("window.cutoffMinutes"));
        assert_eq!(ymd(2026, 12, 4).weekday(), Weekday::Fri);
    }
}
