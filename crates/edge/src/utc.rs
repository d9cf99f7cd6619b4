//! Calendar time in UTC from a Unix time, for the date formats of the logs and server-status.
//! weir writes UTC everywhere, which needs no time-zone database.

/// A moment broken into calendar fields, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    pub day: u32,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    /// 0 for Sunday.
    pub weekday: usize,
}

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

impl Utc {
    pub fn from_unix(secs: u64) -> Utc {
        let days = secs / 86_400;
        let (year, month, day) = civil_from_days(days as i64);
        let rem = secs % 86_400;
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday.
            weekday: ((days + 4) % 7) as usize,
        }
    }

    /// `Nov`.
    pub fn month_abbr(&self) -> &'static str {
        MONTHS[(self.month.clamp(1, 12) - 1) as usize]
    }

    /// `Thursday`.
    pub fn weekday_name(&self) -> &'static str {
        DAYS[self.weekday % 7]
    }

    /// `Thu`.
    pub fn weekday_abbr(&self) -> &'static str {
        &self.weekday_name()[..3]
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let t = Utc::from_unix(1_795_694_400);
        assert_eq!(
            (t.year, t.month_abbr(), t.day, t.hour, t.weekday_name()),
            (2026, "Nov", 26, 12, "Thursday")
        );
    }
}
