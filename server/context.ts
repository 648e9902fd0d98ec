/**
 * What every service module receives: configuration (read once, validated) and the storage it works on.
 */
import { BlobStore } from '../storage/blobstore';
import { SqliteIndex } from '../storage/index-sqlite';
import { Config } from './config';

export interface ServerContext {
  config: Config;
  blobs: BlobStore;
  index: SqliteIndex;
}
