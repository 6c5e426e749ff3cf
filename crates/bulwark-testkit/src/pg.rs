//! Throwaway PostgreSQL databases (written next).
