//! redis-lanes
