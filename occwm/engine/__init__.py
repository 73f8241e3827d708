"""mmengine hooks of occwm (registered in ``occwm.registry.HOOKS``)."""
