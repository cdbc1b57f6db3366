//! Checks of the options the simulators share: a value within its range, or a message naming the option,
//! the range and the value given.

/// The range of a share (of malformed records, of updates, …).
pub(crate) const SHARE: (f64, f64) = (0.0, 1.0);

/// `value` if it lies in `range` (inclusive; NaN never does), otherwise why not.
pub(crate) fn within(name: &str, value: f64, (low, high): (f64, f64)) -> Result<f64, String> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{name} must be between {low} and {high}, not {value}"
        ))
    }
}

/// `value` brought into `range`; `if_nan` for NaN. For generators, which take options `run` would refuse
/// rather than panic on them.
pub(crate) fn clamped(value: f64, (low, high): (f64, f64), if_nan: f64) -> f64 {
    if value.is_nan() {
        if_nan
    } else {
        value.clamp(low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_or_nan_are_refused_naming_the_option() {
        assert_eq!(within("rate", 5.0, (1.0, 10.0)), Ok(5.0));
        assert_eq!(within("rate", 10.0, (1.0, 10.0)), Ok(10.0));
        let e = within("malformed_share", 1.5, SHARE).unwrap_err();
        assert_eq!(e, "malformed_share must be between 0 and 1, not 1.5");
        assert!(within("x", f64::NAN, SHARE).is_err());
        assert_eq!(clamped(f64::NAN, SHARE, 0.0), 0.0);
        assert_eq!(clamped(7.0, SHARE, 0.0), 1.0);
        assert_eq!(clamped(f64::NEG_INFINITY, SHARE, 0.0), 0.0);
    }
}
