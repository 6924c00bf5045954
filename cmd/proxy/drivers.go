package main

// The storage drivers store.driver and cache.content.driver can name, with
// the parameters distribution documents for them
// (https://distribution.github.io/distribution/storage-drivers/):
// filesystem and inmemory (registered by package embedded), s3 (any
// S3-API store: AWS, versitygw, Ceph RGW...), gcs and azure.
import (
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"  // storage driver "azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"    // storage driver "gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws" // storage driver "s3"
)
