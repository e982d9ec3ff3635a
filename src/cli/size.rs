//! Byte sizes on the command line: `4096`, `64K`, `64KiB`, `1M`, `1.5G`, `10G`, `1T`.
//! Suffixes are binary (K = 1024) with or without `iB`/`B`, in either case.

/// Parse a size; used as a clap `value_parser`.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in size {s:?} (use K, M, G, T or P)"
            ));
        }
    };
    let bad = || format!("{s:?} is not a size (examples: 4096, 64K, 1M, 10G, 1T)");
    let value = if num.contains('.') {
        let v: f64 = num.parse().map_err(|_| bad())?;
        v * (1u64 << shift) as f64
    } else {
        let v: u64 = num.parse().map_err(|_| bad())?;
        let bytes = v.checked_mul(1u64 << shift).ok_or_else(bad)?;
        return Ok(bytes);
    };
    if !value.is_finite() || value < 0.0 || value > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(value as u64)
}

/// Bytes for people: `1.5 GiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("64K"), Ok(65536));
        assert_eq!(parse("64KiB"), Ok(65536));
        assert_eq!(parse("64kb"), Ok(65536));
        assert_eq!(parse("1M"), Ok(1 << 20));
        assert_eq!(parse("10G"), Ok(10 << 30));
        assert_eq!(parse("1T"), Ok(1 << 40));
        assert_eq!(parse("1.5G"), Ok(3 << 29));
        assert!(parse("12Q").is_err());
        assert!(parse("K").is_err());
        assert!(parse("99999999999999999999T").is_err());
    }

    #[test]
    fn human_sizes_use_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
