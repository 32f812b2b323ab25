//! How numbers, sizes and times read on screen.

use chrono::{DateTime, Utc};

/// A rate as a percentage with precision where it matters: 0.0123 → "1.23 %", 0.25 → "25 %",
/// 0.00004 → "0.004 %". `None` (no denominator) reads as an em dash.
pub fn rate(rate: Option<f64>) -> String {
    let Some(rate) = rate.filter(|r| r.is_finite()) else {
        return "—".to_owned();
    };
    let percent = rate * 100.0;
    let digits = if percent == 0.0 || percent >= 10.0 {
        0
    } else if percent >= 1.0 {
        2
    } else {
        // Two significant digits below 1 %, so 0.004 % does not round to "0.00 %".
        let magnitude = -percent.log10().floor() as usize;
        (magnitude + 1).min(6)
    };
    let text = format!("{percent:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text} %")
}

/// Counts with thin thousands separators: 1234567 → "1 234 567".
/// A confidence with the decimals that show what is left of certainty: "95 %", "97.5 %",
/// "99.96 %".
pub fn confidence(confidence: f64) -> String {
    let percent = confidence * 100.0;
    // Two significant digits of the error left: 95 (5), 97.5 (2.5), 99.96 (0.04).
    let error = (100.0 - percent).max(1e-4);
    let digits = ((-error.log10()).ceil().max(0.0) as usize + 1).min(4);
    let text = format!("{percent:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text} %")
}

pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('\u{202F}');
        }
        grouped.push(digit);
    }
    if n < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// Byte sizes in binary units: 512 → "512 B", 1536 → "1.5 KiB".
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    let text = format!("{value:.1}");
    format!("{} {unit}", text.trim_end_matches(".0"))
}

/// An RFC 3339 time from the API as "2026-11-22 14:05 UTC"; text that is not one is shown as
/// it came.
pub fn time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidences_never_round_up_to_certainty() {
        assert_eq!(confidence(0.95), "95 %");
        assert_eq!(confidence(0.975), "97.5 %");
        assert_eq!(confidence(1.0 - 0.05 / 126.0), "99.96 %");
    }

    #[test]
    fn rates_keep_two_significant_digits_below_ten_percent() {
        assert_eq!(rate(None), "—");
        assert_eq!(rate(Some(f64::NAN)), "—");
        assert_eq!(rate(Some(0.0)), "0 %");
        assert_eq!(rate(Some(0.25)), "25 %");
        assert_eq!(rate(Some(1.0)), "100 %");
        assert_eq!(rate(Some(0.0123)), "1.23 %");
        assert_eq!(rate(Some(0.02)), "2 %");
        assert_eq!(rate(Some(0.0045)), "0.45 %");
        assert_eq!(rate(Some(0.00004)), "0.004 %");
        assert_eq!(rate(Some(0.000_012_34)), "0.0012 %");
    }

    #[test]
    fn counts_group_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1\u{202F}000");
        assert_eq!(count(1_234_567), "1\u{202F}234\u{202F}567");
        assert_eq!(count(-4200), "-4\u{202F}200");
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3 MiB");
    }

    #[test]
    fn times_read_in_utc() {
        assert_eq!(time("2026-11-22T14:05:09+00:00"), "2026-11-22 14:05 UTC");
        assert_eq!(time("2026-11-22T15:05:09+01:00"), "2026-11-22 14:05 UTC");
        assert_eq!(time("yesterday"), "yesterday");
    }
}
