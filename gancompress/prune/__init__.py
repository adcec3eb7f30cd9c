"""Generator pruning: layer selection (keep-dense policy), granularities, allocation, masks, AGP."""
from .granularity import (GRANULARITIES, Granularity, check_sparsity, granularity_mask, implied_sparsity,
                          nm_for_sparsity, nm_keep, parse_block, parse_nm, prune_count, select_top)
from ..layer_table import CONV, CONV_TRANSPOSE, LINEAR
from .layers import (Geometry, from_canonical, geometry, is_prunable,
                     layer_kind, module_geometry, param_key, prunable_layers, to_canonical, weight_name)
from .config import SCOPES, PruneConfig
from .masks import (achieved_sparsity, apply_masks, compute_masks, current_masks, detect_structure, layer_report,
                    module_structure)
from .schedule import agp_schedule, agp_sparsity
from .allocation import ALLOCATIONS, check_allocation, lamp_scores, rank_layer
from .keep_dense import choose_dense, parse_keep_dense
from .target import TargetPlan, plan_target

__all__ = [
    "GRANULARITIES", "Granularity", "check_sparsity", "granularity_mask", "implied_sparsity", "nm_keep", "nm_for_sparsity",
    "parse_block", "parse_nm", "prune_count", "select_top",
    "CONV", "CONV_TRANSPOSE", "LINEAR", "Geometry", "from_canonical", "geometry", "is_prunable",
    "layer_kind", "module_geometry", "param_key", "prunable_layers", "to_canonical", "weight_name",
    "SCOPES", "PruneConfig", "achieved_sparsity", "apply_masks", "compute_masks", "current_masks",
    "detect_structure", "layer_report", "module_structure",
    "agp_schedule", "agp_sparsity",
    "ALLOCATIONS", "check_allocation", "lamp_scores", "rank_layer", "choose_dense", "parse_keep_dense",
    "TargetPlan", "plan_target",
]
