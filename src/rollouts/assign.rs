//! Which deployments fall in which wave, decided once at creation.
//!
//! Waves take from a pool of the selected deployments (in id order) that no earlier
//! wave took: a wave with folders takes only from those folders; a size takes that
//! many (a percentage is of the whole selection, rounded down, at least 1); the last
//! wave, and any wave without a size, takes everything left that it may take. Since
//! every wave draws from what is left, no deployment can be in two waves. What no
//! wave takes, and a wave that takes nothing, is a problem named in the answer.

use std::collections::HashSet;

use super::plan::Size;

/// A wave as the assignment sees it.
#[derive(Debug, Clone)]
pub struct WaveSpec {
    pub name: String,
    /// `None`: any folder.
    pub folders: Option<HashSet<i32>>,
    pub size: Option<Size>,
}

/// For each wave, the indexes into `candidates` (`(deployment id, folder id)` in id
/// order) it takes; or every problem found.
pub fn assign(
    candidates: &[(String, i32)],
    waves: &[WaveSpec],
) -> Result<Vec<Vec<usize>>, Vec<String>> {
    let total = candidates.len();
    let mut taken = vec![false; total];
    let mut problems = Vec::new();
    let mut assigned = Vec::with_capacity(waves.len());
    for (n, wave) in waves.iter().enumerate() {
        let last = n + 1 == waves.len();
        let limit = match (last, wave.size) {
            (false, Some(size)) => size.of(total),
            _ => usize::MAX,
        };
        let mut mine = Vec::new();
        for (i, (_, folder)) in candidates.iter().enumerate() {
            if mine.len() >= limit {
                break;
            }
            if taken[i] || wave.folders.as_ref().is_some_and(|f| !f.contains(folder)) {
                continue;
            }
            taken[i] = true;
            mine.push(i);
        }
        if mine.is_empty() {
            problems.push(format!(
                "waves[{n}] ('{}') takes no deployment: nothing selected is left in its folders",
                wave.name
            ));
        }
        assigned.push(mine);
    }
    let left = taken.iter().filter(|t| !**t).count();
    if left > 0 {
        problems.push(format!(
            "the waves do not cover the selection: {left} selected deployments are in no wave (give the last wave no folders, or add their folders)"
        ));
    }
    if problems.is_empty() {
        Ok(assigned)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(folders: &[(i32, usize)]) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (folder, count) in folders {
            for i in 0..*count {
                out.push((format!("{folder}-{i:03}"), *folder));
            }
        }
        out.sort();
        out
    }

    fn wave(name: &str, folders: &[i32], size: Option<Size>) -> WaveSpec {
        WaveSpec {
            name: name.into(),
            folders: (!folders.is_empty()).then(|| folders.iter().copied().collect()),
            size,
        }
    }

    #[test]
    fn a_canary_folder_then_a_percentage_then_the_rest() {
        let candidates = fleet(&[(1, 2), (2, 10), (3, 8)]);
        let waves = [
            wave("canary", &[1], None),
            wave("quarter", &[], Some(Size::Percent(25))),
            wave("rest", &[], Some(Size::Count(1))),
        ];
        let assigned = assign(&candidates, &waves).unwrap();
        let sizes: Vec<usize> = assigned.iter().map(Vec::len).collect();
        // 25% of 20 = 5; the last wave ignores its size and takes the other 13.
        assert_eq!(sizes, vec![2, 5, 13]);
        assert!(assigned[0].iter().all(|&i| candidates[i].1 == 1));
    }

    #[test]
    fn a_percentage_rounds_down_and_takes_at_least_one() {
        let candidates = fleet(&[(1, 7)]);
        let waves = [
            wave("a", &[], Some(Size::Percent(10))),
            wave("b", &[], Some(Size::Percent(50))),
            wave("c", &[], None),
        ];
        let sizes: Vec<usize> = assign(&candidates, &waves)
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![1, 3, 3]);
    }

    #[test]
    fn a_count_larger_than_what_is_left_takes_what_is_left() {
        let candidates = fleet(&[(1, 3), (2, 1)]);
        let waves = [wave("a", &[1], Some(Size::Count(10))), wave("b", &[], None)];
        let sizes: Vec<usize> = assign(&candidates, &waves)
            .unwrap()
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![3, 1]);
    }

    #[test]
    fn waves_that_leave_deployments_out_or_take_nothing_are_named() {
        let candidates = fleet(&[(1, 2), (2, 2)]);
        let waves = [wave("only-one", &[1], None), wave("again", &[1], None)];
        let problems = assign(&candidates, &waves).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("waves[1]") && problems[0].contains("again"));
        assert!(problems[1].contains("2 selected deployments are in no wave"));
    }

    #[test]
    fn no_deployment_is_in_two_waves() {
        let candidates = fleet(&[(1, 5), (2, 5)]);
        let waves = [
            wave("a", &[1, 2], Some(Size::Count(4))),
            wave("b", &[1], Some(Size::Count(4))),
            wave("c", &[], None),
        ];
        let assigned = assign(&candidates, &waves).unwrap();
        let mut all: Vec<usize> = assigned.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), candidates.len());
        assert_eq!(assigned.iter().map(Vec::len).sum::<usize>(), 10);
    }
}
