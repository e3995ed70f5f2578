//! MNIST-format (idx) datasets: our own reader for gzipped or plain idx files,
//! and [`Dataset`], the images and labels of one split as tensors.
//!
//! idx format (big-endian): two zero bytes, an element-type byte (only 0x08,
//! unsigned byte, is used by (Fashion-)MNIST and accepted here), the number
//! of dimensions, then one u32 per dimension, then the elements. So the magic
//! word is 0x00000801 for label files (1 dim) and 0x00000803 for image files
//! (3 dims: count, rows, cols). A file is gzipped iff it starts with 1f 8b.
use std::io::Read;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Where Debian's `dataset-fashion-mnist` package puts Fashion-MNIST.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Magic word of an idx label file (unsigned bytes, 1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Magic word of an idx image file (unsigned bytes, 3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// A parsed idx file of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Images of an idx3 file: `count` images of `rows`×`cols` bytes, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// Read a file, transparently gunzipping it when it starts with 1f 8b.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    gunzip_maybe(raw, path)
}

/// Gunzip `raw` when it starts with 1f 8b; `path` only names it in errors.
pub fn gunzip_maybe(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::idx(path, format!("bad gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse the (decompressed) bytes of an idx file; `path` only names it in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::idx(
            path,
            format!("truncated: {} bytes, an idx header needs at least 4", bytes.len()),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 || bytes[3] == 0 {
        return Err(Error::idx(path, format!("not an idx file: bad magic 0x{magic:08x}")));
    }
    if bytes[2] != 0x08 {
        return Err(Error::idx(
            path,
            format!("unsupported idx element type 0x{:02x} (magic 0x{magic:08x}); only 0x08 (unsigned byte) is supported", bytes[2]),
        ));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::idx(
            path,
            format!(
                "truncated: header of {ndim} dims needs {header} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let want = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::idx(path, format!("dims {dims:?} overflow")))?;
    let have = bytes.len() - header;
    if have < want {
        return Err(Error::idx(
            path,
            format!("truncated: dims {dims:?} need {want} data bytes, file has {have}"),
        ));
    }
    if have > want {
        return Err(Error::idx(
            path,
            format!("{} trailing bytes after the {want} data bytes of dims {dims:?}", have - want),
        ));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Read and parse an idx file (gzipped or plain).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(&read_maybe_gz(path)?, path)
}

fn expect_magic(arr_bytes: &[u8], path: &Path, want: u32, what: &str) -> Result<()> {
    if arr_bytes.len() >= 4 {
        let magic = u32::from_be_bytes([arr_bytes[0], arr_bytes[1], arr_bytes[2], arr_bytes[3]]);
        if arr_bytes[0] == 0 && arr_bytes[1] == 0 && arr_bytes[2] == 0x08 && magic != want {
            return Err(Error::idx(
                path,
                format!("not an idx {what} file: magic 0x{magic:08x}, expected 0x{want:08x}"),
            ));
        }
    }
    Ok(())
}

/// Read an idx1 label file (magic 0x00000801).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels(&read_maybe_gz(path)?, path)
}

/// Parse the (decompressed) bytes of an idx1 label file; `path` names it in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    expect_magic(bytes, path, LABELS_MAGIC, "label")?;
    Ok(parse_idx(bytes, path)?.data)
}

/// Read an idx3 image file (magic 0x00000803).
pub fn read_images(path: &Path) -> Result<Images> {
    parse_images(&read_maybe_gz(path)?, path)
}

/// Parse the (decompressed) bytes of an idx3 image file; `path` names it in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Images> {
    expect_magic(bytes, path, IMAGES_MAGIC, "image")?;
    let a = parse_idx(bytes, path)?;
    Ok(Images { count: a.dims[0], rows: a.dims[1], cols: a.dims[2], pixels: a.data })
}

/// Encode an idx file of unsigned bytes (used by tests and tools that make data).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), data.len(), "idx dims do not match data length");
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// File-name stems tried, in order, for (images, labels).
    fn stems(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Split::Train => &[("train-images", "train-labels")],
            Split::Test => &[("t10k-images", "t10k-labels"), ("test-images", "test-labels")],
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// Find `<stem>-<kind>-ubyte[.gz]` or `<stem>.<kind>-ubyte[.gz]` in `dir`.
fn find_file(dir: &Path, stem: &str, kind: &str) -> Option<PathBuf> {
    for sep in ["-", "."] {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{stem}{sep}{kind}-ubyte{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// One split of an image-classification data set, as tensors on the CPU.
#[derive(Debug)]
pub struct Dataset {
    /// `[N, 1, rows, cols]` float32, pixel / 255 (so in [0, 1]).
    pub images: Tensor,
    /// `[N]` int64 class labels.
    pub labels: Tensor,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    /// Load `split` from an MNIST-layout directory: `train-images-idx3-ubyte`,
    /// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` (or `test-...`),
    /// `t10k-labels-idx1-ubyte`, each optionally `.gz`.
    pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<Dataset> {
        let dir = dir.as_ref();
        let found = split
            .stems()
            .iter()
            .find_map(|(i, l)| Some((find_file(dir, i, "idx3")?, find_file(dir, l, "idx1")?)));
        let Some((img_path, lbl_path)) = found else {
            let (i, l) = split.stems()[0];
            return Err(Error::Dataset {
                dir: dir.to_path_buf(),
                msg: format!(
                    "no {split} split: expected {i}-idx3-ubyte[.gz] and {l}-idx1-ubyte[.gz]"
                ),
            });
        };
        let images = read_images(&img_path)?;
        let labels = read_labels(&lbl_path)?;
        if images.count != labels.len() {
            return Err(Error::Dataset {
                dir: dir.to_path_buf(),
                msg: format!(
                    "image/label count mismatch: {} has {} images, {} has {} labels",
                    img_path.display(),
                    images.count,
                    lbl_path.display(),
                    labels.len()
                ),
            });
        }
        Ok(Self::from_raw(&images, &labels))
    }

    /// [`Dataset::load`] from [`DEFAULT_DIR`] (Fashion-MNIST).
    pub fn load_default(split: Split) -> Result<Dataset> {
        Self::load(DEFAULT_DIR, split)
    }

    /// Build from raw bytes. Panics if counts differ (use [`Dataset::load`] for files).
    pub fn from_raw(images: &Images, labels: &[u8]) -> Dataset {
        assert_eq!(images.count, labels.len(), "image/label count mismatch");
        let (n, r, c) = (images.count as i64, images.rows as i64, images.cols as i64);
        let imgs =
            Tensor::from_slice(&images.pixels).view([n, 1, r, c]).to_kind(Kind::Float) / 255.0;
        let labels = Tensor::from_slice(labels).to_kind(Kind::Int64);
        Dataset { images: imgs, labels, rows: images.rows, cols: images.cols }
    }

    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` examples (or all, if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len()) as i64;
        Dataset {
            images: self.images.narrow(0, 0, n),
            labels: self.labels.narrow(0, 0, n),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Minibatches `(images, labels)`. With `shuffle` the order comes from
    /// `Tensor::randperm`, so it follows `tch::manual_seed`. The last batch may
    /// be smaller.
    pub fn batches(&self, batch_size: usize, shuffle: bool) -> Batches<'_> {
        assert!(batch_size > 0, "batch_size must be > 0");
        let n = self.len() as i64;
        let order = shuffle.then(|| Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu)));
        Batches { data: self, order, pos: 0, batch_size: batch_size as i64 }
    }
}

/// Iterator over minibatches, see [`Dataset::batches`].
pub struct Batches<'a> {
    data: &'a Dataset,
    order: Option<Tensor>,
    pos: i64,
    batch_size: i64,
}

impl Iterator for Batches<'_> {
    type Item = (Tensor, Tensor);
    fn next(&mut self) -> Option<Self::Item> {
        let n = self.data.len() as i64;
        if self.pos >= n {
            return None;
        }
        let len = self.batch_size.min(n - self.pos);
        let out = match &self.order {
            Some(order) => {
                let idx = order.narrow(0, self.pos, len);
                (self.data.images.index_select(0, &idx), self.data.labels.index_select(0, &idx))
            }
            None => (
                self.data.images.narrow(0, self.pos, len),
                self.data.labels.narrow(0, self.pos, len),
            ),
        };
        self.pos += len;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn tiny_images(n: usize) -> Vec<u8> {
        let px: Vec<u8> = (0..n * 4 * 3).map(|i| (i * 7 % 256) as u8).collect();
        encode_idx(&[n, 4, 3], &px)
    }

    fn tiny_labels(n: usize) -> Vec<u8> {
        encode_idx(&[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>())
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn plain_and_gzipped_read_the_same() {
        let d = tempfile::tempdir().unwrap();
        let plain = write(d.path(), "a-idx3-ubyte", &tiny_images(5));
        let zipped = write(d.path(), "b-idx3-ubyte.gz", &gz(&tiny_images(5)));
        let a = read_images(&plain).unwrap();
        let b = read_images(&zipped).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.count, a.rows, a.cols), (5, 4, 3));
        assert_eq!(a.pixels[7], 49);
        let l = read_labels(&write(d.path(), "l", &tiny_labels(5))).unwrap();
        assert_eq!(l, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn bad_magic_names_file_and_magic() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "junk.bin", b"PK\x03\x04hello world");
        let e = err_text(read_images(&p));
        assert!(
            e.contains("junk.bin") && e.contains("not an idx file: bad magic 0x504b0304"),
            "{e}"
        );
    }

    #[test]
    fn wrong_kind_of_idx_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "labels", &tiny_labels(3));
        let e = err_text(read_images(&p));
        assert!(e.contains("not an idx image file: magic 0x00000801, expected 0x00000803"), "{e}");
        let p = write(d.path(), "images", &tiny_images(3));
        let e = err_text(read_labels(&p));
        assert!(e.contains("expected 0x00000801"), "{e}");
        let mut f = tiny_labels(3);
        f[2] = 0x0d; // float elements
        let e = err_text(read_labels(&write(d.path(), "floats", &f)));
        assert!(e.contains("unsupported idx element type 0x0d"), "{e}");
    }

    #[test]
    fn truncated_and_trailing() {
        let d = tempfile::tempdir().unwrap();
        let full = tiny_images(2);
        let e = err_text(read_images(&write(d.path(), "t1", &full[..full.len() - 1])));
        assert!(
            e.contains("t1")
                && e.contains("truncated: dims [2, 4, 3] need 24 data bytes, file has 23"),
            "{e}"
        );
        let e = err_text(read_images(&write(d.path(), "t2", &full[..10])));
        assert!(e.contains("truncated: header of 3 dims needs 16 bytes"), "{e}");
        let e = err_text(read_images(&write(d.path(), "t3", &full[..2])));
        assert!(e.contains("truncated"), "{e}");
        let mut long = full.clone();
        long.push(0);
        let e = err_text(read_images(&write(d.path(), "t4", &long)));
        assert!(e.contains("1 trailing bytes"), "{e}");
        // A gzip stream cut short.
        let z = gz(&full);
        let e = err_text(read_images(&write(d.path(), "t5.gz", &z[..z.len() / 2])));
        assert!(e.contains("t5.gz") && e.contains("bad gzip stream"), "{e}");
    }

    #[test]
    fn dataset_load_and_mismatch() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "train-images-idx3-ubyte.gz", &gz(&tiny_images(6)));
        write(d.path(), "train-labels-idx1-ubyte", &tiny_labels(6));
        write(d.path(), "t10k-images-idx3-ubyte", &tiny_images(4));
        write(d.path(), "t10k-labels-idx1-ubyte.gz", &gz(&tiny_labels(3)));
        let tr = Dataset::load(d.path(), Split::Train).unwrap();
        assert_eq!(tr.len(), 6);
        assert_eq!(tr.images.size(), vec![6, 1, 4, 3]);
        assert_eq!(tr.labels.int64_value(&[5]), 5);
        assert!((tr.images.double_value(&[0, 0, 0, 1]) - 7.0 / 255.0).abs() < 1e-6);
        let e = Dataset::load(d.path(), Split::Test).unwrap_err().to_string();
        assert!(
            e.contains("count mismatch") && e.contains("4 images") && e.contains("3 labels"),
            "{e}"
        );
        let empty = tempfile::tempdir().unwrap();
        let e = Dataset::load(empty.path(), Split::Test).unwrap_err().to_string();
        assert!(e.contains("no test split"), "{e}");
        // Batches cover everything exactly once, shuffled or not.
        for shuffle in [false, true] {
            let mut seen: Vec<i64> = tr
                .batches(4, shuffle)
                .flat_map(|(_, l)| Vec::<i64>::try_from(&l).unwrap())
                .collect();
            seen.sort();
            assert_eq!(seen, vec![0, 1, 2, 3, 4, 5]);
        }
    }

    #[test]
    fn test_split_accepts_test_names() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "test-images.idx3-ubyte", &tiny_images(2));
        write(d.path(), "test-labels.idx1-ubyte", &tiny_labels(2));
        assert_eq!(Dataset::load(d.path(), Split::Test).unwrap().len(), 2);
    }
}
