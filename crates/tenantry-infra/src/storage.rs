//! Tenant storage: a prefix per tenant, `<region>/tenants/<tenant id>/`, in an object store.
//!
//! Object stores have no directories, so a tenant's prefix exists when its marker object
//! (`_tenantry.json`, which names the tenant) does; on the local filesystem that marker is what
//! makes the tenant's folder appear. Creating is idempotent (the marker is overwritten), and
//! removing deletes every object under the prefix, then the empty folders.

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::sync::Arc;
use tenantry_core::TenantId;
use tenantry_core::config::{S3Config, StorageBackend, StorageConfig};

/// The marker object at the root of each tenant's prefix.
pub const MARKER: &str = "_tenantry.json";

/// Objects of this size or more are copied as a stream of parts (a multipart upload).
const STREAMED_FROM: u64 = 16 * 1024 * 1024;

/// The size of each part of a streamed copy (S3 takes parts of 5 MiB to 5 GiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one streamed copy uploaded at once: memory holds at most this many, plus one.
const PARTS_IN_FLIGHT: usize = 2;

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The storage root could not be prepared.
    #[error("cannot use storage root {path}: {source}")]
    Root {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The object store failed.
    #[error("object storage: {0}")]
    Store(#[from] object_store::Error),
    /// The storage configuration cannot work.
    #[error("storage configuration: {0}")]
    Config(String),
}

impl StorageError {
    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            StorageError::Store(object_store::Error::NotFound { .. })
                | StorageError::Store(object_store::Error::InvalidPath { .. })
                | StorageError::Config(_)
        )
    }
}

/// What a tenant's storage holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
}

/// Tenants' storage prefixes in one object store.
#[derive(Clone)]
pub struct TenantStorage {
    store: Arc<dyn ObjectStore>,
    /// For people: where the store is (a directory or a bucket URL).
    location: String,
}

impl TenantStorage {
    /// Storage on the local filesystem under `root` (created if missing).
    pub fn local(root: &std::path::Path) -> Result<Self, StorageError> {
        let root_err = |source| StorageError::Root {
            path: root.display().to_string(),
            source,
        };
        std::fs::create_dir_all(root).map_err(root_err)?;
        let store = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            location: root.display().to_string(),
        })
    }

    /// An S3-compatible bucket; credentials from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from the configuration file.
    pub fn s3(config: &S3Config) -> Result<Self, StorageError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            // S3-compatible servers are addressed by path, not by a host name per bucket.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let bucket = builder.build()?;
        let prefix = config.prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(bucket)
        } else {
            Arc::new(PrefixStore::new(bucket, prefix))
        };
        let location = match prefix {
            "" => format!("s3://{}", config.bucket),
            p => format!("s3://{}/{p}", config.bucket),
        };
        Ok(Self { store, location })
    }

    /// The backend the configuration chooses.
    pub fn from_config(config: &StorageConfig) -> Result<Self, StorageError> {
        match (config.backend, &config.s3) {
            (StorageBackend::Local, _) => Self::local(&config.root),
            (StorageBackend::S3, Some(s3)) => Self::s3(s3),
            (StorageBackend::S3, None) => Err(StorageError::Config(
                "storage.backend = \"s3\" needs a [storage.s3] section with a bucket".into(),
            )),
        }
    }

    /// Where the store is, for people.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The tenant's prefix, `<region>/tenants/<tenant id>`.
    pub fn prefix(region: &str, tenant: TenantId) -> Path {
        Path::from_iter([region, "tenants", &tenant.to_string()])
    }

    /// Where the tenant's prefix is, for its application: the store's location and the prefix.
    pub fn url_of(&self, region: &str, tenant: TenantId) -> String {
        format!(
            "{}/{}/",
            self.location.trim_end_matches('/'),
            Self::prefix(region, tenant)
        )
    }

    fn marker(region: &str, tenant: TenantId) -> Path {
        Path::from_iter([region, "tenants", &tenant.to_string(), MARKER])
    }

    /// Creates the tenant's prefix by writing its marker.
    pub async fn ensure(
        &self,
        region: &str,
        tenant: TenantId,
        slug: &str,
    ) -> Result<(), StorageError> {
        let marker = Self::marker(region, tenant);
        let body = serde_json::json!({ "tenant_id": tenant, "slug": slug, "region": region });
        self.store
            .put(&marker, PutPayload::from(body.to_string()))
            .await?;
        Ok(())
    }

    /// Whether the tenant's prefix exists (its marker is there).
    pub async fn exists(&self, region: &str, tenant: TenantId) -> Result<bool, StorageError> {
        let marker = Self::marker(region, tenant);
        match self.store.head(&marker).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes (or replaces) the JSON document `name` under the tenant's prefix.
    pub async fn put_document(
        &self,
        region: &str,
        tenant: TenantId,
        name: &str,
        document: &serde_json::Value,
    ) -> Result<(), StorageError> {
        let path = Self::prefix(region, tenant).join(name);
        self.store
            .put(&path, PutPayload::from(document.to_string()))
            .await?;
        Ok(())
    }

    /// The JSON document `name` under the tenant's prefix, if it is there.
    pub async fn document(
        &self,
        region: &str,
        tenant: TenantId,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StorageError> {
        let path = Self::prefix(region, tenant).join(name);
        match self.store.get(&path).await {
            Ok(found) => {
                let bytes = found.bytes().await?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the document `name` under the tenant's prefix; a missing one is fine.
    pub async fn remove_document(
        &self,
        region: &str,
        tenant: TenantId,
        name: &str,
    ) -> Result<(), StorageError> {
        let path = Self::prefix(region, tenant).join(name);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Objects and bytes under the tenant's prefix.
    pub async fn usage(&self, region: &str, tenant: TenantId) -> Result<Usage, StorageError> {
        let prefix = Self::prefix(region, tenant);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        Ok(Usage {
            objects: metas.len() as u64,
            bytes: metas.iter().map(|m| m.size).sum(),
        })
    }

    /// Copies every object under the tenant's prefix in `from` to the same name under its
    /// prefix in `to` (a residency change), replacing what is there. Returns how many.
    pub async fn copy_prefix(
        &self,
        from: &str,
        to: &str,
        tenant: TenantId,
    ) -> Result<u64, StorageError> {
        let (source, target) = (Self::prefix(from, tenant), Self::prefix(to, tenant));
        let metas: Vec<_> = self.store.list(Some(&source)).try_collect().await?;
        for meta in &metas {
            let inner = meta
                .location
                .prefix_match(&source)
                .map(Path::from_iter)
                .unwrap_or_default();
            let destination = Path::from_iter(target.parts().chain(inner.parts()));
            self.copy_object(&meta.location, &destination, meta.size)
                .await?;
        }
        Ok(metas.len() as u64)
    }

    /// Copies one object of `size` bytes. Read and written rather than `copy`: the local
    /// store copies by hard link, and a copy back onto its own link leaves its staging file
    /// behind. An object larger than [`STREAMED_FROM`] is streamed into a multipart upload, a
    /// part at a time, so that memory stays bounded whatever its size.
    async fn copy_object(&self, from: &Path, to: &Path, size: u64) -> Result<(), StorageError> {
        let object = self.store.get(from).await?;
        if size < STREAMED_FROM {
            let bytes = object.bytes().await?;
            self.store.put(to, PutPayload::from(bytes)).await?;
            return Ok(());
        }
        let upload = self.store.put_multipart(to).await?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut chunks = object.into_stream();
        let streamed = async {
            while let Some(chunk) = chunks.try_next().await? {
                parts.wait_for_capacity(PARTS_IN_FLIGHT).await?;
                parts.put(chunk);
            }
            Ok::<_, object_store::Error>(())
        }
        .await;
        match streamed {
            Ok(()) => {
                parts.finish().await?;
                Ok(())
            }
            Err(e) => {
                // The parts uploaded so far go, then the error is told.
                if let Err(abort) = parts.abort().await {
                    tracing::warn!(object = %to, error = %abort, "aborting a multipart copy failed");
                }
                Err(e.into())
            }
        }
    }

    /// Deletes everything under the tenant's prefix. A prefix that is already gone is fine.
    pub async fn remove(&self, region: &str, tenant: TenantId) -> Result<u64, StorageError> {
        let prefix = Self::prefix(region, tenant);
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        for meta in &metas {
            match self.store.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(metas.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_prefix_is_created_once_measured_and_removed_with_its_folder() {
        let root = tempfile::tempdir().unwrap();
        let storage = TenantStorage::local(root.path()).unwrap();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        for _ in 0..2 {
            storage.ensure("eu-west", a, "acme").await.unwrap();
        }
        storage.ensure("eu-west", b, "globex").await.unwrap();
        let folder = root.path().join(format!("eu-west/tenants/{a}"));
        assert!(folder.is_dir());
        assert!(storage.exists("eu-west", a).await.unwrap());
        assert_eq!(storage.usage("eu-west", a).await.unwrap().objects, 1);
        assert_eq!(storage.remove("eu-west", a).await.unwrap(), 1);
        assert_eq!(storage.remove("eu-west", a).await.unwrap(), 0);
        assert!(!folder.exists(), "the tenant's folder is removed");
        // A residency change copies the prefix, to the other region.
        storage.ensure("eu-west", a, "acme").await.unwrap();
        storage
            .put_document("eu-west", a, "app.json", &serde_json::json!({"k": 1}))
            .await
            .unwrap();
        assert_eq!(
            storage.copy_prefix("eu-west", "us-east", a).await.unwrap(),
            2
        );
        assert!(storage.exists("us-east", a).await.unwrap());
        assert_eq!(
            storage.document("us-east", a, "app.json").await.unwrap(),
            Some(serde_json::json!({"k": 1}))
        );
        assert!(
            storage.exists("eu-west", a).await.unwrap(),
            "the source stays"
        );
        // And back (a rolled-back residency change), then removed: nothing is left behind.
        assert_eq!(
            storage.copy_prefix("us-east", "eu-west", a).await.unwrap(),
            2
        );
        assert_eq!(storage.remove("eu-west", a).await.unwrap(), 2);
        assert!(
            !folder.exists(),
            "{:?}",
            std::fs::read_dir(&folder).map(|d| d.count())
        );
        assert!(
            storage.exists("eu-west", b).await.unwrap(),
            "neighbours are kept"
        );
    }

    #[tokio::test]
    async fn a_large_object_is_copied_as_a_stream_of_parts() {
        let root = tempfile::tempdir().unwrap();
        let storage = TenantStorage::local(root.path()).unwrap();
        let a = TenantId::generate();
        storage.ensure("eu-west", a, "acme").await.unwrap();
        let large = serde_json::json!({ "blob": "0123456789abcdef".repeat(1_500_000) });
        storage
            .put_document("eu-west", a, "large.json", &large)
            .await
            .unwrap();
        assert!(storage.usage("eu-west", a).await.unwrap().bytes > STREAMED_FROM);
        assert_eq!(
            storage.copy_prefix("eu-west", "us-east", a).await.unwrap(),
            2
        );
        assert_eq!(
            storage.document("us-east", a, "large.json").await.unwrap(),
            Some(large)
        );
        // Nothing but the two objects (no staging file of the upload) is left behind.
        assert_eq!(storage.remove("us-east", a).await.unwrap(), 2);
        assert!(!root.path().join(format!("us-east/tenants/{a}")).exists());
    }
}
