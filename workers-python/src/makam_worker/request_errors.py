"""Request errors of the server side, each mapped to one gRPC status code by the servicer."""

import grpc


class WorkerError(Exception):
    status = grpc.StatusCode.INTERNAL


class InvalidArgument(WorkerError):
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(WorkerError):
    status = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(WorkerError):
    status = grpc.StatusCode.FAILED_PRECONDITION
