from .inference import add_sampling_args, init_generator, sampling_options

__all__ = ['init_generator', 'add_sampling_args', 'sampling_options']
