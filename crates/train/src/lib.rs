//! Training SANA-SR models.
