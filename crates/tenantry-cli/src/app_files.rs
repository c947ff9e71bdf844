//! The storefront sample application and the example infrastructure module, embedded so that
//! `tenantry init` can write a working setup anywhere. A test checks this list against `examples/storefront`, so a migration added
//! there and forgotten here fails the build's tests.

macro_rules! storefront {
    ($($path:literal),+ $(,)?) => {
        &[$(($path, include_str!(concat!("../../../examples/storefront/", $path)))),+]
    };
}

/// `(path relative to the application directory, contents)`.
pub const STOREFRONT: &[(&str, &str)] = storefront!(
    "README.md",
    "migrations/sqlite/0001_customers.sql",
    "migrations/sqlite/0002_orders.sql",
    "migrations/sqlite/0003_carts.sql",
    "migrations/sqlite/0004_users.sql",
    "migrations/postgres/0001_customers.sql",
    "migrations/postgres/0002_orders.sql",
    "migrations/postgres/0003_carts.sql",
    "migrations/postgres/0004_users.sql",
    "seeds/0001_store_settings.sql",
);

/// The example Terraform module of every tier, `(path relative to the new directory, contents)`.
pub const INFRASTRUCTURE: &[(&str, &str)] = &[(
    "infra/modules/default/main.tf.json",
    include_str!("../../../examples/infrastructure/modules/default/main.tf.json"),
)];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files_under(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }

    #[test]
    fn every_storefront_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/storefront");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = STOREFRONT.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
