//! trainer: libtorch training on the DLA (issue 3).
