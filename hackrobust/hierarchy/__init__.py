"""The Hierarchical group robustness challenge (modified iNat2021): its folder layout, dataset,
class order, a balanced sampler, and small stand-ins (synthetic, Tiny-ImageNet) to run it on."""
