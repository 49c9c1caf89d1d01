/*
 * The SDK clients the wiring hands to the adapters, as types only: code outside this folder names them from here
 * and so never imports the AWS SDK itself.
 */
export type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
export type { S3Client } from '@aws-sdk/client-s3';
export type { SNSClient } from '@aws-sdk/client-sns';
