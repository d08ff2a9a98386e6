//! The README's metric table says what the catalog says.

use prompter_filter::catalog::Metric;

#[test]
fn readme_metric_table_matches_the_catalog() {
    let readme = std::fs::read_to_string(prompter_e2e::repo_root().join("README.md")).unwrap();
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .filter(|cells: &Vec<String>| {
            Metric::ALL
                .iter()
                .any(|m| cells[1] == format!("`{}`", m.name()))
        })
        .collect();
    assert_eq!(rows.len(), Metric::ALL.len(), "one row per metric");
    for (metric, row) in Metric::ALL.iter().zip(&rows) {
        let def = metric.def();
        assert_eq!(row[1], format!("`{}`", def.name));
        assert_eq!(row[2], def.kind.prometheus_type(), "{}", def.name);
        assert_eq!(row[3], def.labels.join(", "), "{}", def.name);
    }
}
