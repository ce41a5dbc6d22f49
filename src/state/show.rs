//! `journey state show|prune`: what a store holds, and dropping what is old.
